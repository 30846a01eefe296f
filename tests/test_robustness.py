"""No input, however wrong, crashes the program or slips through.

Random and mutated site configs either plan or are refused with the one-line message that
names a key; hostile values in every field that reaches a shell, a URL, a Kubernetes name
or the hub's config are refused or shown harmless; planted secrets appear in nothing the
program or the plan emits.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.config import ConfigError, parse_site_config
from components.node_scripts import MountSettings, remote_command
from sitectl.mockrun import redact, reveal
from tests.sandbox import KEY, Sandbox, requires_sandbox
from tests.sites import DELETE, changed, espsrc, run, split_path, stack_settings
from tests.test_plan import plan

# The message starts with the key as written in the stack file: a top-level setting, then
# its path (which may run through a map's own keys).
KEY_LINE = re.compile(r"^(site|hub|nodes|share|storage|secrets)([.\[][^\n]*?)?: ")
BASE = espsrc()


def leaf_paths(value: Any, path: str = "") -> list[str]:
    """Every dotted key of the settings, down to the scalars."""
    if isinstance(value, dict):
        out = [path] if path else []
        for key, inner in value.items():
            out += leaf_paths(inner, f"{path}.{key}" if path else key)
        return out
    if isinstance(value, list):
        out = [path]
        for i, inner in enumerate(value):
            out += leaf_paths(inner, f"{path}[{i}]")
        return out
    return [path]


HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ1c3RlZC1ub3QtYS1yZWFsLWtleS0wMDAwMDAw"
# Every optional setting set: the vault example plus what neither stack file uses.
FULL = changed(
    stack_settings("example-vault"),
    {
        "hub.chartVersion": "3.1.0",
        "hub.adoptRelease": True,
        "hub.dbStorageClass": "local-path",
        "hub.adoptedChartVersion": "3.1.0",
        "hub.oauth.usernameClaim": "preferred_username",
        "hub.oauth.userdataParams": {"state": "login"},
        "hub.singleuser.defaultUrl": "/lab",
        "hub.singleuser.extraEnv": {"JUPYTERHUB_SINGLEUSER_APP": "jupyter-server"},
        "hub.extraValues": {"hub": {"extraEnv": {"TZ": "UTC"}}},
        "nodes.bastion.user": "jump",
        "nodes.bastion.port": 2222,
        "nodes.bastion.hostKey": HOST_KEY,
        "nodes.hosts[0].hostKey": HOST_KEY,
        "nodes.hosts[0].port": 2200,
        "share.existingId": "3f1c2a9e-5b7d-4c8e-9a0f-1b2c3d4e5f60",
        "share.accessRuleId": "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d",
        "storage.namespace": "cephfs-provisioner",
        "storage.reclaimPolicy": "Retain",
    },
)
PATHS = sorted(set(leaf_paths(BASE)) | set(leaf_paths(FULL)))


def base_for(path: str) -> dict[str, Any]:
    """The stack a mutation starts from: espsrc where it has the key, else FULL."""
    return BASE if path in ESPSRC_PATHS else FULL


ESPSRC_PATHS = set(leaf_paths(BASE))


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from([";", "$(id)", "`id`", "a\nb", "..", "-x", "latest", "", " ", "http://x"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
# A mutation sets a key to a value, or removes it.
mutations = values | st.just(DELETE)


def check_refusal_or_plan(settings_: dict[str, Any], full_program: bool) -> None:
    try:
        parsed = parse_site_config(settings_)
    except ConfigError as err:
        lines = str(err).splitlines()
        assert lines and "Traceback" not in str(err)
        # One line per problem, each naming its key.
        assert all(KEY_LINE.match(line) for line in lines), lines
        if full_program:
            result = run(settings_)
            assert isinstance(result.error, ConfigError), repr(result.error)
            assert result.resources == []
        return
    assert parsed.site.hub_host
    if full_program:
        run(settings_).ok()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=mutations)
def test_mutated_configs_are_refused_a_line_per_problem_or_valid(path: str, value: Any) -> None:
    check_refusal_or_plan(changed(base_for(path), {path: value}), full_program=False)


def test_the_full_stack_is_valid() -> None:
    """Every optional setting at once plans: mutations of FULL start from a valid site."""
    run(FULL).ok()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from(PATHS),
    value=mutations,
    second=st.sampled_from(PATHS),
    other=mutations,
)
def test_mutated_configs_through_the_whole_program(
    path: str, value: Any, second: str, other: Any
) -> None:
    """Through the program too: a refusal registers nothing; a valid config plans."""
    try:
        settings_ = changed(base_for(path), {path: value})
        settings_ = changed(settings_, {second: other})
    except (TypeError, KeyError, IndexError):
        settings_ = changed(base_for(path), {path: value})
    check_refusal_or_plan(settings_, full_program=True)


@settings(max_examples=150, deadline=None)
@given(
    section=st.sampled_from(["site", "hub", "nodes", "share", "storage", "secrets"]),
    value=values,
)
def test_random_sections_are_refused_in_one_line(section: str, value: Any) -> None:
    settings_ = copy.deepcopy(BASE)
    settings_[section] = value
    check_refusal_or_plan(settings_, full_program=False)


# A key spelt like pydantic's own marker for a map's key: once read as a bad map key, which
# named no setting at all (': key "site" Extra inputs are not permitted').
@pytest.mark.parametrize(
    ("path", "value", "line"),
    [
        ("site", {"[key]": None}, 'site["[key]"]: is not a known setting;'),
        ("hub.oauth", {"[key]": 1}, 'hub.oauth["[key]"]: is not a known setting;'),
        (
            "hub.oauth.extraAuthorizeParams",
            {"[key]": "a\nb"},
            'hub.oauth.extraAuthorizeParams["[key]"]: "a\\nb" is not one line',
        ),
        (
            "hub.singleuser.extraEnv",
            {"[key]": "x"},
            'hub.singleuser.extraEnv: key "[key]" is not an environment variable name',
        ),
    ],
)
def test_a_key_spelt_like_the_key_marker_is_named(path: str, value: Any, line: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_site_config(changed(BASE, {path: value}))
    lines = str(err.value).splitlines()
    assert any(shown.startswith(line) for shown in lines), lines
    assert all(KEY_LINE.match(shown) for shown in lines), lines


# -- hostile values ----------------------------------------------------------------------
HOSTILE = {
    "semicolon": "a;reboot",
    "command substitution": "$(touch /tmp/jhp-pwned)",
    "backticks": "`touch /tmp/jhp-pwned`",
    "newline": "a\nb",
    "space": "a b",
    "dot-dot": "..",
    "leading dash": "-rf",
    "very long": "a" * 300,
    "look-alike": "n\u043etebook",
    "empty": "",
}
# Fields whose values reach a shell command, a URL, or a Kubernetes or OpenStack name.
REFUSED_FIELDS = [
    "site.name",
    "site.hubHost",
    "hub.namespace",
    "hub.release",
    "hub.baseUrl",
    "hub.oauth.authorizeUrl",
    "hub.oauth.tokenUrl",
    "hub.oauth.userdataUrl",
    "hub.oauth.usernameClaim",
    "hub.singleuser.image.name",
    "hub.singleuser.image.tag",
    "hub.profiles[1].image",
    "nodes.mountPath",
    "nodes.sshUser",
    "nodes.hosts[0].name",
    "nodes.hosts[0].address",
    "nodes.hosts[0].hostKey",
    "share.name",
    "share.shareType",
    "share.cephUser",
    "storage.className",
    "storage.namespace",
    "hub.chartVersion",
    "hub.dbStorageClass",
    "hub.singleuser.defaultUrl",
    "nodes.bastion.host",
    "nodes.bastion.user",
    "nodes.bastion.hostKey",
    "share.existingId",
    "share.accessRuleId",
    "secrets.vault.storeName",
    "secrets.vault.remoteKey",
    "secrets.vault.property",
    "hub.oauth.claimGroupsKey",
]


@pytest.mark.parametrize("field", REFUSED_FIELDS)
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_values_are_refused(field: str, kind: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_site_config(changed(FULL, {field: HOSTILE[kind]}))
    assert str(err.value).startswith(f"{field}: "), str(err.value)
    assert "\n" not in str(err.value)


# Map keys that become environment variable names, claim names or URL parameter names.
REFUSED_KEYS = ["hub.singleuser.extraEnv", "hub.oauth.extraAuthorizeParams"]


@pytest.mark.parametrize("field", REFUSED_KEYS)
@pytest.mark.parametrize("kind", sorted(set(HOSTILE) - {"very long"}))
def test_hostile_map_keys_are_refused(field: str, kind: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_site_config(changed(FULL, {field: {HOSTILE[kind]: "x"}}))
    assert str(err.value).startswith(f"{field}: key "), str(err.value)
    assert "\n" not in str(err.value)


# A valid value with a hostile tail: refused, or (for URLs that only reach the hub's
# config) carried verbatim into it and into nothing a node runs.
SUFFIXED_FIELDS = {
    "site.hubHost": None,
    "nodes.hosts[0].address": None,
    "nodes.mountPath": None,
    "share.cephUser": None,
    "hub.oauth.authorizeUrl": ("hub", "config", "GenericOAuthenticator", "authorize_url"),
    "hub.oauth.tokenUrl": ("hub", "config", "GenericOAuthenticator", "token_url"),
    "hub.oauth.userdataUrl": ("hub", "config", "GenericOAuthenticator", "userdata_url"),
}


@pytest.mark.parametrize("field", sorted(SUFFIXED_FIELDS))
@pytest.mark.parametrize("tail", [";reboot", "$(id)", "`id`", "/../-x", " x", "\nx"])
def test_hostile_tails_are_refused_or_inert(field: str, tail: str) -> None:
    value = f"{dig_value(BASE, field)}{tail}"
    result = run(changed(BASE, {field: value}))
    if result.error is not None:
        assert isinstance(result.error, ConfigError)
        assert str(result.error).startswith(f"{field}: "), str(result.error)
        assert result.resources == []
        return
    where = SUFFIXED_FIELDS[field]
    assert where is not None, f"{field} accepted {value!r}"
    values = reveal(result.one("kubernetes:helm.sh/v3:Release").inputs["values"])
    for key in where:
        values = values[key]
    assert values == value
    for command in result.by_type("command:remote:Command"):
        assert tail not in json.dumps(reveal(command.inputs))


def dig_value(settings_: dict[str, Any], path: str) -> Any:
    node: Any = settings_
    for part in split_path(path):
        node = node[part]
    return node


# Free text that only ever becomes a string in the hub's YAML config: accepted where it is
# printable text, and carried verbatim (quoted by YAML), never interpreted.
TEXT_FIELDS = {
    "hub.oauth.loginService": ("hub", "config", "GenericOAuthenticator", "login_service"),
    "hub.oauth.clientId": ("hub", "config", "GenericOAuthenticator", "client_id"),
    "hub.oauth.userdataParams.state": (
        "hub", "config", "GenericOAuthenticator", "userdata_params", "state",
    ),
    "hub.singleuser.extraEnv.JUPYTERHUB_SINGLEUSER_APP": (
        "singleuser", "extraEnv", "JUPYTERHUB_SINGLEUSER_APP",
    ),
    # Scopes and authorize parameters go into the login redirect's query, URL-encoded.
    "hub.oauth.scopes[0]": ("hub", "config", "GenericOAuthenticator", "scope", 0),
    "hub.oauth.extraAuthorizeParams.prompt": (
        "hub", "config", "GenericOAuthenticator", "extra_authorize_params", "prompt",
    ),
}  # fmt: skip


@pytest.mark.parametrize("field", sorted(TEXT_FIELDS))
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_text_is_refused_or_carried_verbatim(field: str, kind: str) -> None:
    value = HOSTILE[kind]
    result = run(changed(base_for(field), {field: value}))
    if result.error is not None:
        assert isinstance(result.error, ConfigError)
        assert str(result.error).startswith(f"{field}: ")
        assert result.resources == []
        return
    values = reveal(result.one("kubernetes:helm.sh/v3:Release").inputs["values"])
    for key in TEXT_FIELDS[field]:
        values = values[key]
    assert values == value


@requires_sandbox
@pytest.mark.parametrize("mount_name", ["a..b", "a-", "x_y.z", "_x", "a.b-c"])
def test_accepted_odd_mount_paths_are_harmless(box: Sandbox, mount_name: str) -> None:
    """A mount path the config accepts runs as a path, nothing else, in the real script."""
    mount_path = f"{box.root}/mnt/{mount_name}"
    parse_site_config(changed(BASE, {"nodes.mountPath": mount_path}))  # accepted
    settings_ = MountSettings(
        "node-a",
        "198.51.100.11:6789:/volumes/_nogroup/a/b",
        mount_path,
        "spsrc-k8-cluster00",
        "kernel",
        install_packages=False,
        owner="jupyterhub-platform/test/mounts-node-a",
    )
    result = box.run(remote_command(settings_.create_script(), "root"), stdin=KEY + "\n")
    assert result.returncode == 0, result.stderr
    assert Path(mount_path).is_dir()
    assert box.mounts() == [f"ceph 198.51.100.11:6789:/volumes/_nogroup/a/b {mount_path}"]


# -- planted secrets -----------------------------------------------------------------------
def test_planted_secrets_appear_nowhere(tmp_path: Path) -> None:
    oauth = "PLANTED-oauth-7c41d2e9"
    ssh = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nPLANTED-ssh-0b9e55aa\n"
        "-----END OPENSSH PRIVATE KEY-----"
    )
    out = tmp_path / "plan"
    result = plan(
        "espsrc", "--out", str(out), "--secret", f"oauthClientSecret={oauth}",
        "--secret", f"sshPrivateKey={ssh}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads((out / "plan.json").read_text())
    # Secrets the plan itself made up stand in for the cephx key and the proxy token.
    program = run(espsrc(), {"oauthClientSecret": oauth, "sshPrivateKey": ssh}).ok()
    made_up = [
        reveal(
            program.one("openstack:sharedfilesystem/shareAccess:ShareAccess").outputs["accessKey"]
        ),
        *(
            reveal(token.outputs["hex"])
            for token in program.by_type("random:index/randomBytes:RandomBytes")
        ),
    ]
    needles = [oauth, "PLANTED-ssh-0b9e55aa", *made_up]
    haystacks = {"stdout": result.stdout, "stderr": result.stderr}
    haystacks |= {str(p): p.read_text() for p in out.rglob("*") if p.is_file()}
    haystacks["program outputs"] = json.dumps(program.outputs, default=str)
    for res in program.resources:
        haystacks[f"{res.name} plain inputs"] = json.dumps(redact(res.inputs), default=str)
        haystacks[f"{res.name} plain outputs"] = json.dumps(redact(res.outputs), default=str)
    assert document["resources"]
    for needle in needles:
        for where, text in haystacks.items():
            assert needle not in text, f"secret found in {where}"


def test_a_failing_plan_leaks_nothing(tmp_path: Path) -> None:
    oauth = "PLANTED-oauth-fail-51aa"
    bad = tmp_path / "Pulumi.bad.yaml"
    bad.write_text(
        "config:\n  jupyterhub-platform:hub:\n    nodePort: 80\n"
        f"  jupyterhub-platform:note: {oauth}\n"
    )
    result = plan("bad", "--stack-file", str(bad), "--out", str(tmp_path / "o"),
                  "--secret", f"oauthClientSecret={oauth}")  # fmt: skip
    assert result.returncode == 2
    assert oauth not in result.stdout + result.stderr


def test_a_secret_pasted_into_a_plain_setting_is_not_echoed(tmp_path: Path) -> None:
    """The plan knows the secrets it was given: its one-line error for a bad setting that
    holds one (a secret pasted into the wrong key) shows the mark instead of the value."""
    oauth = "PLANTED-oauth-5e3a91"
    ssh = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nPLANTED-ssh-77c0de\n-----END OPENSSH PRIVATE KEY-----"
    )
    key_file = tmp_path / "key"
    key_file.write_text(ssh + "\n")
    for key, value in (("hub.nodePort", oauth), ("hub.oauth.authorizeUrl", "PLANTED-ssh-77c0de")):
        bad = tmp_path / "Pulumi.bad.yaml"
        settings_ = changed(espsrc(), {key: value})
        bad.write_text(
            json.dumps({"config": {f"jupyterhub-platform:{k}": v for k, v in settings_.items()}})
        )
        result = plan(
            "bad", "--stack-file", str(bad), "--out", str(tmp_path / "o"), "--no-render",
            "--secret", f"oauthClientSecret={oauth}", "--secret-file", f"sshPrivateKey={key_file}",
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert f"error: {key}: " in result.stderr, result.stderr
        assert "[secret]" in result.stderr, result.stderr
        assert oauth not in result.stdout + result.stderr
        assert "PLANTED-ssh-77c0de" not in result.stdout + result.stderr


@requires_sandbox
def test_sandbox_scripts_never_echo_the_key(box: Sandbox) -> None:
    settings_ = MountSettings(
        "node-a", "198.51.100.11:6789:/volumes/_nogroup/a/b", box.mount_path(),
        "spsrc-k8-cluster00", "kernel", install_packages=False,
        owner="jupyterhub-platform/test/mounts-node-a",
    )  # fmt: skip
    for script in (settings_.create_script(), settings_.delete_script()):
        result = box.run(remote_command(script, "root"), stdin=KEY + "\n")
        # A script that stopped early would print no key either: both must have run.
        assert result.returncode == 0, result.stderr
        assert KEY not in result.stdout + result.stderr
