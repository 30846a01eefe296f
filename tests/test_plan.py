"""The offline plan: `python -m sitectl plan`, run as an operator would run it."""

from __future__ import annotations

import json
import os
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
from sitectl.plan import PlanError
from sitectl.stackfile import load_stack_file
from tests.conftest import REQUIRE_ALL
from tests.sites import ROOT, chart_defaults, chart_schema, deep_merge, espsrc, run
from tests.test_node_scripts import shellcheck

S1 = "planted-oauth-S1-3e9d1f"
S2 = "-----BEGIN OPENSSH PRIVATE KEY-----\nplanted-ssh-S2-b77c04\n-----END OPENSSH PRIVATE KEY-----"


def plan(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sitectl", "plan", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
    )


# CI has Helm and the chart packages, and must render; a user's clone may have neither and
# then skips the render tests (the plan's own skip line says why).
RENDER = ("--require-render",) if os.environ.get(REQUIRE_ALL) == "1" else ()


def skip_unless_rendered(result: subprocess.CompletedProcess[str]) -> None:
    for line in result.stdout.splitlines() + result.stderr.splitlines():
        if line.startswith("Chart render skipped: "):
            pytest.skip(line)


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
        *RENDER,
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
        (b"config:\n  a: 1\n  b: \xff\n", "is not UTF-8 text (byte 0xff at line 3); save it"),
        ("config:\n  a: 1\n".encode("utf-16"), "is not UTF-8 text (byte 0xff at line 1)"),
        # PyYAML would keep the second silently.
        (
            "config:\n  jupyterhub-platform:nodes:\n    sshUser: a\n    sshUser: b\n",
            "is not valid YAML at line 4: duplicate key 'sshUser' (first at line 3)",
        ),
        ("config:\n  a: 1\n  a: 1\n", "at line 3: duplicate key 'a' (first at line 2)"),
        # Values config cannot carry (bytes, a date, a set) are refused where they are.
        ("config:\n  a: 1\n  b: !!binary aGk=\n", "at line 3: 'binary' values are not"),
        ("config:\n  a: !!timestamp 2025-01-01\n", "at line 2: 'timestamp' values are not"),
        ("config:\n  a:\n    b: !!set {x, y}\n", "at line 3: 'set' values are not"),
        (f"config:\n  a: 1\n  b: {'9' * 5000}\n", "at line 3: a number too long to read"),
        # Nine aliases of nine aliases...: a few lines that expand to 9**9 values, which
        # json.dumps wrote out until memory ran out.
        (
            "config:\n  x:a:\n    a: &a [1,1,1,1,1,1,1,1,1]\n"
            + "".join(
                f"    {c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n"
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            ),
            "x:a: expands to more than 1000000 values (YAML aliases?)",
        ),
        # The settings without their `config:` line: four lines of "is missing" said nothing
        # of where they had gone.
        (
            "jupyterhub-platform:site:\n  name: x\njupyterhub-platform:hub: {}\n",
            "jupyterhub-platform:site: is at the top level; settings go under `config:`",
        ),
        (
            "config:\n  'jupyterhub-platform:': x\n",
            "config key 'jupyterhub-platform:' is not of the form namespace:name",
        ),
        # Left out as undecryptable, it became 'hub: "offline-plan-placeholder-hub" is not a
        # map of settings'.
        (
            "config:\n  jupyterhub-platform:hub:\n    oauth:\n      clientId: {secure: v1:AA}\n",
            "error: hub.oauth.clientId: is encrypted (secure:), which only the Pulumi CLI can",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, setup: Any, message: str) -> None:
    if isinstance(setup, dict):
        settings = espsrc()
        settings["hub"]["nodePort"] = setup["hub.nodePort"]
        path = stack_file(tmp_path, settings)
    else:
        path = tmp_path / "Pulumi.test.yaml"
        if isinstance(setup, bytes):
            path.write_bytes(setup)
        elif setup != "missing":
            path.write_text(setup)
    result = plan("test", "--stack-file", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert message in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_merged_key_may_still_be_overridden(tmp_path: Path) -> None:
    """Only a key written twice is refused: a `<<` merge's keys are there to be overridden."""
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text("config:\n  x:defaults: &d {a: 1, b: 2}\n  x:site:\n    <<: *d\n    b: 3\n")
    assert load_stack_file(path, "x").config["x:site"] == '{"a": 1, "b": 3}'


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


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        # A value given as a secret was shown as the bad value of the setting it landed in.
        (["--secret", "site=PLANTED-1"], {}, "error: --secret site: is not a secret setting"),
        ([], {"JHP_SECRET_share": "PLANTED-2"}, "error: JHP_SECRET_share: is not a secret"),
        (["--secret-file", "hub=KEYFILE"], {}, "error: --secret-file hub: is not a secret"),
        (
            ["--secret", "sshprivatekey=PLANTED-4"],
            {},
            "error: --secret sshprivatekey: is not a secret setting; did you mean sshPrivateKey?",
        ),
    ],
)
def test_a_secret_for_a_setting_that_is_none_is_refused_unshown(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nPLANTED-3\n")
    args = [a.replace("KEYFILE", str(key_file)) for a in args]
    result = plan("espsrc", "--out", str(tmp_path / "o"), *args, env={**os.environ, **env})
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "PLANTED" not in result.stdout + result.stderr


def test_an_unknown_stack_says_how_to_make_one(tmp_path: Path) -> None:
    site = f"nosuch-{os.getpid()}"
    result = plan(site, "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr == (
        f"error: unknown stack '{site}': there is no Pulumi.{site}.yaml (`make new-site "
        f"STACK={site}` writes one from the template; or give the stack file with "
        "--stack-file)\n"
    )
    assert result.stdout == "" and not (tmp_path / "out").exists()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert plan().returncode == 2
    bad = plan("espsrc", "--secret", "novalue", "--out", str(tmp_path / "o"))
    assert bad.returncode == 2
    assert bad.stderr == "error: --secret: expected KEY=VALUE (the argument is not shown here)\n"
    assert "novalue" not in bad.stdout + bad.stderr, "it may be the secret itself"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # The stack name becomes the owner in the node scripts, a file name and the default
        # --out directory: "a b" failed deep in the program with five lines of mock errors,
        # and "../../x" wrote the plan outside build/plan.
        (["a b"], "error: site 'a b': is not a stack name (letters, digits, '_', '.' and '-'"),
        (["$(id)"], "error: site '$(id)': is not a stack name"),
        (["../../x"], "error: site '../../x': is not a stack name"),
        ([""], "error: site '': is not a stack name"),
        (["espsrc", "--out", "/dev/null"], "error: --out /dev/null: is not a directory"),
        (["espsrc", "--out", "/proc/jhp-plan"], "error: --out /proc/jhp-plan: cannot be written"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: list[str], message: str) -> None:
    site = args[0]
    result = plan(*args, "--stack-file", str(ROOT / "Pulumi.espsrc.yaml"), "--no-render")
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    if site not in ("", "espsrc"):  # "" is build/plan itself, which other tests make
        assert not (ROOT / "build" / "plan" / site).exists()


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


# -- the chart render in the plan ----------------------------------------------------------
def test_plan_shows_the_charts_objects_under_the_release(
    espsrc_plan: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, out = espsrc_plan
    skip_unless_rendered(result)
    lines = result.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.endswith(" hub-release"))
    assert lines[at + 1].startswith("     │  │     chart jupyterhub 3.1.0: ")
    assert "objects, in chart/ (Helm v3." in lines[at + 1]
    counts = {}
    for line in lines[at + 2 :]:
        words = line.replace("│", " ").split()
        if len(words) != 2 or not words[0].isdigit():
            break
        counts[words[1]] = int(words[0])
    document = json.loads((out / "plan.json").read_text())
    assert counts == document["chart"]["counts"]
    assert counts["Deployment"] == 3 and counts["Service"] == 3
    assert f"Chart checks: 8 run on {sum(counts.values())} objects" in result.stdout
    written = sorted(p.name for p in (out / "chart").iterdir())
    assert written == sorted(f"{kind.lower()}.yaml" for kind in counts)
    listed = {(o["kind"], o["name"]) for o in document["chart"]["objects"]}
    on_disk = {
        (d["kind"], d["metadata"]["name"])
        for path in (out / "chart").iterdir()
        for d in yaml.safe_load_all(path.read_text())
        if d
    }
    assert listed == on_disk
    for path in (out / "chart").iterdir():
        for body in yaml.safe_load_all(path.read_text()):
            if body:
                kubernetes_validate.validate(body, "1.30", strict=True)


def _offline_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No chart package anywhere: no $JHP_CHART_DIR, an empty cache, a closed repository."""
    env = {k: v for k, v in os.environ.items() if k not in ("JHP_CHART_DIR", "JHP_HELM")}
    env.update(
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        JHP_CHART_REPOSITORY="http://127.0.0.1:9/",
        **extra,
    )
    return env


def _fake_helm(tmp_path: Path, version: str) -> str:
    from tests.test_helm import fake_helm

    return str(fake_helm(tmp_path / f"helm-{version}", version))


def test_without_the_chart_the_plan_skips_the_render_in_one_line(tmp_path: Path) -> None:
    env = _offline_env(tmp_path, JHP_HELM=_fake_helm(tmp_path, "v3.17.3"))
    out = tmp_path / "out"
    result = plan("espsrc", "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    skipped = [line for line in result.stdout.splitlines() if "render skipped" in line]
    assert len(skipped) == 1
    assert skipped[0].startswith(
        "Chart render skipped: chart jupyterhub 3.1.0 cannot be had: $JHP_CHART_DIR is not set; "
        f"not in the cache ({tmp_path / 'cache' / 'jupyterhub-platform' / 'charts'}); "
        "the download of http://127.0.0.1:9/index.yaml failed"
    )
    assert skipped[0].endswith("(--require-render makes this an error)")
    assert not (out / "chart").exists()
    assert json.loads((out / "plan.json").read_text())["chart"]["rendered"] is False
    required = plan("espsrc", "--out", str(out), "--require-render", env=env)
    assert required.returncode == 2
    assert required.stderr.startswith(
        "error: --require-render: the chart cannot be rendered: chart jupyterhub 3.1.0 "
        "cannot be had: "
    )
    assert required.stderr.count("\n") == 1 and required.stdout == ""


def test_a_helm_4_is_refused_and_the_render_skipped(tmp_path: Path) -> None:
    helm = _fake_helm(tmp_path, "v4.1.4")
    result = plan("espsrc", "--out", str(tmp_path / "out"), "--json", env=_offline_env(
        tmp_path, JHP_HELM=helm))  # fmt: skip
    assert result.returncode == 0
    json.loads(result.stdout)  # --json keeps stdout to the document; the line goes to stderr
    assert result.stderr == (
        f"Chart render skipped: $JHP_HELM: {helm} is Helm v4.1.4; the render needs Helm 3, the "
        "Helm the Pulumi Kubernetes provider embeds (--require-render makes this an error)\n"
    )


def test_no_render_leaves_the_chart_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = plan("espsrc", "--out", str(out), "--no-render")
    assert result.returncode == 0, result.stderr
    # Neither the objects under the release nor the checks on them (advisories may still
    # name the chart).
    assert "objects, in chart/" not in result.stdout and "Chart checks" not in result.stdout
    assert json.loads((out / "plan.json").read_text())["chart"] is None
    assert not (out / "chart").exists()
    both = plan("espsrc", "--out", str(out), "--no-render", "--require-render")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def test_a_value_the_chart_refuses_fails_the_plan_with_its_message(tmp_path: Path) -> None:
    settings = espsrc()
    settings["hub"]["extraValues"] = {
        "singleuser": {"networkPolicy": {"egressAllowRules": {"cloudMetadataServer": True}}}
    }
    out = tmp_path / "out"
    result = plan("test", "--stack-file", str(stack_file(tmp_path, settings)), "--out",
                  str(out), *RENDER)  # fmt: skip
    skip_unless_rendered(result)
    assert result.returncode == 2, result.stdout
    assert result.stdout == ""
    assert result.stderr.startswith(
        "error: chart jupyterhub 3.1.0 refuses the values: execution error at "
        "(jupyterhub/templates/NOTES.txt:"
    )
    assert (
        "singleuser.cloudMetadata.blockWithIptables must as of version 3.0.0 not be configured "
        "together with singleuser.networkPolicy.egressAllowRules.cloudMetadataServer"
    ) in result.stderr
    assert result.stderr.count("\n") == 1
    assert not out.exists()


def test_failed_chart_checks_exit_1(tmp_path: Path) -> None:
    settings = espsrc()
    settings["hub"]["extraValues"] = {"proxy": {"service": {"type": "LoadBalancer"}}}
    path = stack_file(tmp_path, settings)
    result = plan("test", "--stack-file", str(path), "--out", str(tmp_path / "out"), *RENDER)
    skip_unless_rendered(result)
    assert result.returncode == 1, result.stderr
    assert "Chart checks: 8 run on" in result.stdout and ", 1 problem\n" in result.stdout
    assert (
        "    [proxy-public-on-node-port] (Service/proxy-public): is of type LoadBalancer, "
        "not NodePort"
    ) in result.stdout


# -- secrets for the plan -------------------------------------------------------------------
def test_secrets_from_the_environment_and_from_files(tmp_path: Path) -> None:
    oauth_file = tmp_path / "oauth"
    oauth_file.write_text(S1 + "\n")
    out = tmp_path / "out"
    env = {**os.environ, "JHP_SECRET_sshPrivateKey": S2}
    result = plan("espsrc", "--out", str(out), "--no-render", "--json",
                  "--secret-file", f"oauthClientSecret={oauth_file}", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["placeholders"] == []
    for text in [result.stdout, *(p.read_text() for p in out.rglob("*") if p.is_file())]:
        assert S1 not in text and "planted-ssh-S2-b77c04" not in text


def test_secret_sources_and_their_order(tmp_path: Path) -> None:
    from sitectl.plan import secrets_from_environment, secrets_from_files

    env_secrets = secrets_from_environment(
        {"JHP_SECRET_oauthClientSecret": S1, "JHP_SECRET_": "x", "HOME": "/root"}, "p"
    )
    assert env_secrets == {"p:oauthClientSecret": S1}
    key_file = tmp_path / "deploy_key"
    key_file.write_text(S2 + "\n")
    oauth_file = tmp_path / "oauth"
    oauth_file.write_text(S1 + "\n")
    from_files = secrets_from_files(
        [f"sshPrivateKey={key_file}", f"oauthClientSecret={oauth_file}"], "p"
    )
    # A one-line file loses its newline; a key file is kept whole.
    assert from_files == {"p:sshPrivateKey": S2 + "\n", "p:oauthClientSecret": S1}
    with pytest.raises(PlanError, match="--secret-file: 'oauthClientSecret' is not KEY=PATH"):
        secrets_from_files(["oauthClientSecret"], "p")


def test_an_unreadable_secret_file_is_one_line(tmp_path: Path) -> None:
    result = plan("espsrc", "--out", str(tmp_path / "o"), "--secret-file",
                  f"sshPrivateKey={tmp_path / 'missing'}")  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        f"error: --secret-file sshPrivateKey: {tmp_path / 'missing'} cannot be read "
        "(No such file or directory)\n"
    )


def test_make_plan_passes_args_through_and_never_echoes_them(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = f"--no-render --out {out} --secret oauthClientSecret={S1} --json"
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "plan", "STACK=espsrc", f"ARGS={args}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert S1 not in done.stdout + done.stderr
    assert "sitectl plan" not in done.stdout + done.stderr, "make echoed the command line"
    document = json.loads(done.stdout[done.stdout.index("{") :])
    assert document["chart"] is None and document["stack"] == "espsrc"
    assert not any(p["key"] == "oauthClientSecret" for p in document["placeholders"])
    assert (out / "plan.json").is_file()


@pytest.mark.parametrize(
    ("args", "code"),
    [
        # The runbook's values violate mandatory policies: 1, as the plan itself exits.
        (f"--stack-file {ROOT / 'tests/fixtures/Pulumi.runbook.yaml'} --no-render", 1),
        # A stack file that is not there: bad input, 2.
        (f"--stack-file {ROOT / 'tests/fixtures/Pulumi.missing.yaml'} --no-render", 2),
    ],
)
def test_make_plan_exits_with_the_plans_own_code(tmp_path: Path, args: str, code: int) -> None:
    """GNU make answers 2 for any failed recipe; the Makefile's question mode passes the
    plan's 1 through, so a CI job tells a failed policy from bad input."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "plan", "STACK=runbook",
         f"ARGS={args} --out {tmp_path / 'out'}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == code, done.stdout + done.stderr
    if code == 1:
        assert "[mandatory]" in done.stdout and "make: ***" not in done.stderr
    else:
        assert done.stderr.startswith("error: ") and "Pulumi.missing.yaml" in done.stderr


@pytest.mark.parametrize("goal", ["plan", "verify"])
def test_make_passes_the_stack_name_as_a_value(tmp_path: Path, goal: str) -> None:
    """STACK and POLICY_CONFIG reach the command through the environment, never the
    recipe shell's parser (as new-site's STACK does)."""
    pwned = tmp_path / "pwned"
    stack = f"x;touch {pwned}"
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), goal, f"STACK={stack}",
         f"POLICY_CONFIG=$$(touch {pwned})"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert not pwned.exists(), "a make variable reached the shell's parser"
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(f"error: site {stack!r}: is not a stack name"), done.stderr


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
    # The summary lists the bastion as such, whatever the nodes are called.
    assert "    the bastion (bastion.src.example.org)\n" in vault.stdout


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


def test_waivers_and_unpinned_host_keys_show_even_with_their_advisories_disabled(
    tmp_path: Path,
) -> None:
    """What the operator chose to accept stays in the summary and in plan.json: a policy
    config that disables the host-key advisory (and waives a mandatory policy) hides
    neither the unpinned nodes nor the waiver from whoever reviews the plan."""
    settings = espsrc()
    settings["nodes"]["hosts"][0]["hostKey"] = HOST_KEY
    config = tmp_path / "policy.json"
    config.write_text(
        json.dumps(
            {
                "ssh-host-keys-pinned": "disabled",
                "storage-reclaim-retain": {"enforcementLevel": "disabled"},
                "pinned-images": "advisory",
                "capacity-enforced": "mandatory",
            }
        )
    )
    out = tmp_path / "o"
    result = plan("espsrc", "--stack-file", str(stack_file(tmp_path, settings)),
                  "--out", str(out), "--policy-config", str(config), "--no-render")  # fmt: skip
    assert result.returncode == 1, result.stderr  # capacity-enforced, made mandatory, fires
    assert _host_key_advisories(result.stdout) == []
    lines = result.stdout.splitlines()
    start = lines.index(
        "Unpinned SSH host keys (nodes.allowUnpinnedHostKeys: true): the node step trusts "
        "whatever answers at these addresses with the cephx key and root"
    )
    assert lines[start + 1 : start + 4] == [
        "    node k8s-workers-1 (192.168.250.195)",
        "    node k8s-workers-2 (192.168.250.214)",
        "",
    ]
    waived = [line for line in lines if line.startswith("    [waived] ")]
    # Only what is lowered is a waiver; capacity-enforced was raised.
    assert waived == [
        "    [waived] pinned-images: advisory by the policy config (mandatory by default)",
        "    [waived] storage-reclaim-retain: disabled by the policy config (mandatory by default)",
        "    [waived] ssh-host-keys-pinned: disabled by the policy config (advisory by default)",
    ]
    document = json.loads((out / "plan.json").read_text())
    assert document["unpinnedHostKeys"] == [
        {"role": "node", "name": "k8s-workers-1", "address": "192.168.250.195"},
        {"role": "node", "name": "k8s-workers-2", "address": "192.168.250.214"},
    ]
    assert {w["policy"]: (w["level"], w["default"]) for w in document["waivers"]} == {
        "pinned-images": ("advisory", "mandatory"),
        "storage-reclaim-retain": ("disabled", "mandatory"),
        "ssh-host-keys-pinned": ("disabled", "advisory"),
    }
    jsonschema.validate(document, json.loads((ROOT / "sitectl/plan.schema.json").read_text()))


def test_a_fully_pinned_site_without_waivers_reports_neither(tmp_path: Path) -> None:
    settings = espsrc()
    del settings["nodes"]["allowUnpinnedHostKeys"]
    for host in settings["nodes"]["hosts"]:
        host["hostKey"] = HOST_KEY
    out = tmp_path / "o"
    result = plan("espsrc", "--stack-file", str(stack_file(tmp_path, settings)),
                  "--out", str(out), "--no-render")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Unpinned SSH host keys" not in result.stdout and "[waived]" not in result.stdout
    document = json.loads((out / "plan.json").read_text())
    assert document["unpinnedHostKeys"] == [] and document["waivers"] == []


def test_short_secrets_are_redacted_in_everything_the_plan_writes(tmp_path: Path) -> None:
    """A client secret of 3 characters, and a key whose body is 1: no file or output shows
    them (the key is framed as a private key, which the program checks for)."""
    out = tmp_path / "plan"
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nK\n-----END OPENSSH PRIVATE KEY-----"
    result = plan("espsrc", "--out", str(out), "--secret", "oauthClientSecret=Zq9",
                  "--secret", f"sshPrivateKey={key}")  # fmt: skip
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
