"""The offline plan: `python -m sitectl plan`, run as an operator would run it."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from components.node_scripts import remote_command, script_of
from tests.sites import ROOT, chart_defaults, chart_schema, deep_merge, espsrc, run
from tests.test_node_scripts import shellcheck

S1 = "planted-oauth-S1-3e9d1f"
S2 = "-----BEGIN OPENSSH PRIVATE KEY-----\nplanted-ssh-S2-b77c04\n-----END OPENSSH PRIVATE KEY-----"


def plan(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sitectl", "plan", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def stack_file(
    tmp_path: Path, settings: dict[str, Any], extra: dict[str, Any] | None = None
) -> Path:
    config = {f"jupyterhub-platform:{k}": v for k, v in settings.items()}
    config.update(extra or {})
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    return path


@pytest.fixture(scope="module")
def espsrc_plan(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("plan") / "espsrc"
    result = plan(
        "espsrc",
        "--out",
        str(out),
        "--secret",
        f"oauthClientSecret={S1}",
        "--secret",
        f"jupyterhub-platform:sshPrivateKey={S2}",
    )
    return result, out


def test_plan_succeeds_and_prints_the_tree(
    espsrc_plan: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, out = espsrc_plan
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    text = result.stdout
    assert "pulumi:pulumi:Stack" in text and "jupyterhub-platform-espsrc" in text
    assert "share-share  [protect, retainOnDelete]" in text
    assert "3 command:remote:Command" in text
    assert 'hub_url: "https://notebook.espsrc.iaa.csic.es/"' in text
    assert "share_export_path" in text and "(fake: known only after" in text
    assert f"Rendered files in {out}/" in text


def test_plan_lists_every_resource_with_its_dependencies(
    espsrc_plan: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = espsrc_plan
    document = json.loads((out / "plan.json").read_text())
    schema = json.loads((ROOT / "sitectl" / "plan.schema.json").read_text())
    jsonschema.validate(document, schema)
    program = run(espsrc(), {"oauthClientSecret": S1, "sshPrivateKey": S2}).ok()
    names = {r.urn: r.name for r in program.resources}
    expected = {
        r.name: sorted(names[u] for u in program.direct_dependencies(r) if u in names)
        for r in program.resources
    }
    assert {r["name"]: r["dependsOn"] for r in document["resources"]} == expected
    release = next(r for r in document["resources"] if r["type"] == "kubernetes:helm.sh/v3:Release")
    assert "storage-class" in release["dependsOn"] and "hub-namespace" in release["dependsOn"]
    share = next(r for r in document["resources"] if r["name"] == "share-share")
    assert share["protect"] and share["retainOnDelete"] and share["import"] is None
    assert share["parent"] == "share"
    assert "exportLocations" in share["fakeOutputs"]
    assert "share_export_path" in document["fakeOutputs"]
    assert document["placeholders"] == []


def test_plan_schema_is_not_vacuous() -> None:
    schema = json.loads((ROOT / "sitectl" / "plan.schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"stack": "x", "resources": [{"name": "y"}]}, schema)


def test_no_secret_leaves_the_plan(
    espsrc_plan: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, out = espsrc_plan
    haystacks = {"stdout": result.stdout, "stderr": result.stderr}
    haystacks.update({str(p): p.read_text() for p in out.rglob("*") if p.is_file()})
    for needle in (S1, "planted-ssh-S2-b77c04"):
        for where, text in haystacks.items():
            assert needle not in text, f"{needle} in {where}"
    document = json.loads((out / "plan.json").read_text())
    by_name = {r["name"]: r for r in document["resources"]}
    assert by_name["hub-release"]["inputs"]["values"] == "[secret]"
    command = by_name["mounts-k8s-master-0"]["inputs"]
    assert command["connection"] == "[secret]" and command["stdin"] == "[secret]"
    values = yaml.safe_load((out / "values.yaml").read_text())
    assert values["hub"]["config"]["GenericOAuthenticator"]["client_secret"] == "[secret]"
    assert values["proxy"]["secretToken"] == "[secret]"


def test_rendered_files_pass_the_fields_own_checks(
    espsrc_plan: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = espsrc_plan
    manifests = sorted((out / "manifests").glob("*.yaml"))
    assert len(manifests) >= 10
    for path in manifests:
        kubernetes_validate.validate(yaml.safe_load(path.read_text()), "1.30", strict=True)
    values = yaml.safe_load((out / "values.yaml").read_text())
    merged = deep_merge(chart_defaults(), values)
    errors = list(jsonschema.Draft7Validator(chart_schema()).iter_errors(merged))
    assert errors == []
    scripts = sorted((out / "scripts").glob("*.sh"))
    assert len(scripts) == 6
    for path in scripts:
        check = shellcheck(path)
        assert check.returncode == 0, f"{path.name}: {check.stdout}"


def test_encrypted_and_missing_secrets_become_placeholders(tmp_path: Path) -> None:
    path = stack_file(
        tmp_path,
        espsrc(),
        {
            "jupyterhub-platform:oauthClientSecret": {"secure": "v1:AAAABBBBccccdddd"},
            "openstack:password": {"secure": "v1:EEEEFFFFgggghhhh"},
        },
    )
    result = plan("test", "--stack-file", str(path), "--out", str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["placeholders"] == [
        {
            "key": "oauthClientSecret",
            "reason": "secure: value in the stack file; only the Pulumi CLI can decrypt it",
        },
        {"key": "sshPrivateKey", "reason": "not set in the stack"},
        {
            "key": "openstack:password",
            "reason": "secure: value in the stack file; not needed offline",
        },
    ]
    assert "v1:AAAABBBBccccdddd" not in result.stdout
    assert "v1:EEEEFFFFgggghhhh" not in result.stdout


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ({"hub.nodePort": 80}, "error: hub.nodePort: 80 is not in 30000-32767\n"),
        ("not: [valid", "is not valid YAML at line 1"),
        # The parser finds each of these a line later; the message names the line to fix.
        ("config:\n  a: 1\n  b 2\n  c: 3\n", "is not valid YAML at line 3: could not find"),
        ('config:\n  a: "one\n  c: 3\n', "is not valid YAML at line 2: "),
        ("config:\n  a: [1, 2\n  c: 3\n", "is not valid YAML at line 2: "),
        ("config:\n  a: 1\n b: 2\n", "is not valid YAML at line 3: "),
        ("missing", "cannot be read"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, setup: Any, message: str) -> None:
    if isinstance(setup, dict):
        settings = espsrc()
        settings["hub"]["nodePort"] = setup["hub.nodePort"]
        path = stack_file(tmp_path, settings)
    else:
        path = tmp_path / "Pulumi.test.yaml"
        if setup != "missing":
            path.write_text(setup)
    result = plan("test", "--stack-file", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert message in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_every_config_problem_is_an_error_line(tmp_path: Path) -> None:
    settings = espsrc()
    settings["hub"]["nodePort"] = 8080
    settings["share"]["sizeGb"] = "lots"
    path = stack_file(tmp_path, settings)
    result = plan("test", "--stack-file", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: hub.nodePort: 8080 is not in 30000-32767",
        'error: share.sizeGb: "lots" is not a whole number',
    ]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert plan().returncode == 2
    bad = plan("espsrc", "--secret", "novalue", "--out", str(tmp_path / "o"))
    assert bad.returncode == 2
    assert bad.stderr == "error: --secret: expected KEY=VALUE (the argument is not shown here)\n"
    assert "novalue" not in bad.stdout + bad.stderr, "it may be the secret itself"


def test_out_refuses_a_directory_that_is_not_a_plan(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    result = plan("espsrc", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "is not a plan directory" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_two_plans_of_the_same_config_are_identical(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert plan("espsrc", "--out", str(first)).returncode == 0
    assert plan("espsrc", "--out", str(second)).returncode == 0
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for relative in files:
        assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative


@pytest.mark.parametrize("user", ["root", "ubuntu"])
def test_script_of_inverts_remote_command(user: str) -> None:
    script = "echo 'it''s' \"$X\" `a` $(b) \\\n"
    command = remote_command(script, user)
    assert script_of(command) == script == shlex.split(command)[-1]
    with pytest.raises(ValueError, match="not a command line"):
        script_of("rm -rf /")


def test_a_new_plan_replaces_the_old_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert plan("espsrc", "--out", str(out)).returncode == 0
    assert (out / "scripts" / "mounts-k8s-workers-2-create.sh").exists()
    settings = espsrc()
    settings["nodes"]["hosts"] = settings["nodes"]["hosts"][:1]
    path = stack_file(tmp_path, settings)
    assert plan("test", "--stack-file", str(path), "--out", str(out)).returncode == 0
    assert sorted(p.name for p in (out / "scripts").iterdir()) == [
        "mounts-k8s-master-0-create.sh",
        "mounts-k8s-master-0-delete.sh",
    ]


def test_secrets_are_marked_before_the_last_guard(tmp_path: Path) -> None:
    """plan.json, the scripts and the manifests hold no secret even without the scrubbing
    by value that guards every file last: secrets are redacted where they are marked.
    (values.yaml is the exception by design: inside the all-secret release values the
    inner secrets lose their own mark, so they are found by value there.)"""
    from components.node_scripts import script_of
    from sitectl.manifests import is_kubernetes_object, manifest
    from sitectl.plan import build_plan

    path = stack_file(tmp_path, espsrc())
    built = build_plan("test", path, {"jupyterhub-platform:oauthClientSecret": S1,
                                      "jupyterhub-platform:sshPrivateKey": S2})  # fmt: skip
    texts = [json.dumps(built.document())]
    for res in built.run.resources:
        if res.type == "command:remote:Command":
            texts += [script_of(res.inputs["create"]), script_of(res.inputs["delete"])]
        elif is_kubernetes_object(res):
            texts.append(json.dumps(manifest(res)))
    assert built.secret_values
    for needle in (S1, "planted-ssh-S2-b77c04", *built.secret_values):
        assert not any(needle in text for text in texts), needle[:12]


def test_a_run_closes_every_event_loop_it_made_and_restores_the_policy() -> None:
    """The mock monitor's threads get event loops of their own; left open, one can print a
    traceback from its __del__ at exit."""
    import asyncio

    from sitectl import mockrun
    from tests.sites import run as run_site

    made: list[asyncio.AbstractEventLoop] = []
    original = mockrun._RecordingLoopPolicy.new_event_loop

    def spy(self: mockrun._RecordingLoopPolicy) -> asyncio.AbstractEventLoop:
        loop = original(self)
        made.append(loop)
        return loop

    before = asyncio.get_event_loop_policy()
    mockrun._RecordingLoopPolicy.new_event_loop = spy  # type: ignore[method-assign]
    try:
        run_site().ok()
    finally:
        mockrun._RecordingLoopPolicy.new_event_loop = original  # type: ignore[method-assign]
    assert asyncio.get_event_loop_policy() is before
    assert len(made) >= 2, "the run's own loop and at least one executor thread's"
    assert all(loop.is_closed() for loop in made)


def _whole_floats(value: Any, where: str) -> list[str]:
    """Where a whole number is written as a float (31090.0)."""
    if isinstance(value, dict):
        return [f for k, v in value.items() for f in _whole_floats(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [f for i, v in enumerate(value) for f in _whole_floats(v, f"{where}[{i}]")]
    return [where] if isinstance(value, float) and value.is_integer() else []


def test_integers_stay_integers_in_every_file(
    espsrc_plan: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, out = espsrc_plan
    assert result.returncode == 0, result.stderr
    values = yaml.safe_load((out / "values.yaml").read_text())
    assert values["proxy"]["service"]["nodePorts"]["http"] == 31090
    assert isinstance(values["proxy"]["service"]["nodePorts"]["http"], int)
    floats: list[str] = []
    for path in sorted(out.rglob("*")):
        if path.suffix == ".json":
            floats += _whole_floats(json.loads(path.read_text()), path.name)
        elif path.suffix == ".yaml":
            for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
                floats += _whole_floats(doc, f"{path.relative_to(out)}#{i}")
    assert floats == []


HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ1c3RlZC1ub3QtYS1yZWFsLWtleS0wMDAwMDAw"


def _host_key_advisories(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if "[advisory] ssh-host-keys-pinned" in line]


def test_unpinned_host_keys_plan_with_an_advisory_on_every_node(
    espsrc_plan: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path
) -> None:
    result, _ = espsrc_plan
    assert result.returncode == 0, result.stderr
    advisories = _host_key_advisories(result.stdout)
    assert [line.split("(")[1].split(")")[0] for line in advisories] == [
        "mounts-k8s-master-0",
        "mounts-k8s-workers-1",
        "mounts-k8s-workers-2",
    ]
    vault = plan("example-vault", "--out", str(tmp_path / "vault"))
    assert vault.returncode == 0, vault.stderr
    lines = _host_key_advisories(vault.stdout)
    assert len(lines) == 2 and all("the bastion at bastion.src.example.org" in x for x in lines)


def test_host_keys_are_required_without_the_opt_out(tmp_path: Path) -> None:
    settings = espsrc()
    del settings["nodes"]["allowUnpinnedHostKeys"]
    result = plan("espsrc", "--stack-file", str(stack_file(tmp_path, settings)),
                  "--out", str(tmp_path / "o"))  # fmt: skip
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith("error: nodes.hosts[0].hostKey: is missing; pin the SSH host")
    assert result.stderr.count("\n") == 1
    for host in settings["nodes"]["hosts"]:
        host["hostKey"] = HOST_KEY
    pinned = plan("espsrc", "--stack-file", str(stack_file(tmp_path, settings)),
                  "--out", str(tmp_path / "p"))  # fmt: skip
    assert pinned.returncode == 0, pinned.stderr
    assert _host_key_advisories(pinned.stdout) == []
    assert "ssh-host-keys-pinned" not in pinned.stdout


def test_short_secrets_are_redacted_in_everything_the_plan_writes(tmp_path: Path) -> None:
    """A client secret of 3 characters, and a key file of 1: no file or output shows them."""
    out = tmp_path / "plan"
    result = plan("espsrc", "--out", str(out), "--secret", "oauthClientSecret=Zq9",
                  "--secret", "sshPrivateKey=K")  # fmt: skip
    assert result.returncode == 0, result.stderr
    values = yaml.safe_load((out / "values.yaml").read_text())
    assert values["hub"]["config"]["GenericOAuthenticator"]["client_secret"] == "[secret]"
    assert values["proxy"]["secretToken"] == "[secret]"
    texts = {"stdout": result.stdout, **{str(p): p.read_text() for p in out.rglob("*.*")}}
    for where, text in texts.items():
        assert re.search(r"(?<![\w.+/=-])(Zq9|K)(?![\w.+/=-])", text) is None, where


def test_scrub_finds_short_secrets_where_they_stand_alone() -> None:
    from sitectl.plan import Plan

    scrubber = Plan("s", "p", None, [], {"Zq9", "a-long-secret-value"})  # type: ignore[arg-type]
    assert scrubber.scrub("client_secret: Zq9\nx: 'Zq9'\nZq9x aZq9 a-long-secret-value!") == (
        "client_secret: [secret]\nx: '[secret]'\nZq9x aZq9 [secret]!"
    )
    assert scrubber.scrub_data({"a": ["Zq9", "Zq9x"], "b": "x a-long-secret-value"}) == {
        "a": ["[secret]", "Zq9x"],
        "b": "[secret]",
    }
