"""The operator's documentation: the config reference is the model's."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from pydantic import BaseModel

from components import config
from components.config import PROJECT_DIR
from sitectl import configref


def _leaf_keys(model: type[BaseModel], prefix: str) -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        keys.append(key)
        base, _, _ = configref._unwrap(field.annotation)
        if isinstance(base, type) and issubclass(base, BaseModel):
            keys += _leaf_keys(base, f"{key}.")
    return keys


def test_the_config_reference_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sitectl", "config-reference", "--check"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_reference_names_every_key_of_the_model() -> None:
    text = configref.render()
    for key in _leaf_keys(config.SiteConfig, ""):
        assert f"`{key}`" in text, key
    assert "| `nodes.hosts[].hostKey` |" in text


def test_a_changed_model_makes_the_reference_stale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    field = config.ShareSettings.model_fields["size_gb"]
    monkeypatch.setattr(field, "description", "share size in GiB")
    args = configref.argparse.Namespace(check=True, out=configref.REFERENCE)
    assert configref.run(args) == 1


def test_what_a_key_accepts_is_the_error_it_gives() -> None:
    text = configref.render()
    row = next(line for line in text.splitlines() if line.startswith("| `hub.nodePort` |"))
    assert "a whole number in 30000-32767" in row
    row = next(line for line in text.splitlines() if line.startswith("| `hub.oauth.tokenUrl` |"))
    assert "an https:// URL with a host name" in row


# -- every command in the docs is checked ----------------------------------------------------
DOCS = [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md"))]
FENCE = re.compile(r"(?ms)^(<!-- live -->\n)?```([^\n`]*)\n(.*?)^```")
COMMAND_LANGUAGES = {"sh", "bash", "console", "shell"}
OTHER_LANGUAGES = {"yaml", "json", "text", "mermaid", "python", "ini", "haproxy"}
# What a live command may run: it needs the site itself (its cloud, cluster or hosts).
LIVE_PROGRAMS = {"pulumi", "kubectl", "openstack", "ssh", "helm"}
NEW_SITE_TEST = "tests/test_newsite.py::test_a_filled_in_template_plans_with_access_by_group"
# Commands run by a test here (its node id), or by CI itself ("make test").
RUN_BY: list[tuple[str, str]] = [
    (r"make test", "ci"),
    (r"make test-deps", "ci"),
    (r"\.venv/bin/python -m pytest( -m (e2e|login))?( -k \S+)?( tests/\S+)?", "ci"),
    (r"make plan STACK=espsrc", "here"),
    (r"make new-site STACK=mysrc", NEW_SITE_TEST),
    (r"make plan STACK=mysrc", NEW_SITE_TEST),
    (r"make docs", "tests/test_docs.py::test_the_config_reference_is_current"),
]  # fmt: skip


def _commands(block: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    commands = []
    for raw in joined.splitlines():
        line = re.sub(r"\s+#\s.*$", "", raw).strip()
        if line and not line.startswith("#"):
            commands.append(line)
    return commands


def _fenced() -> list[tuple[str, str, bool, str]]:
    """(file, language, marked live, command) of every fenced block's commands."""
    found = []
    for path in DOCS:
        for match in FENCE.finditer(path.read_text(encoding="utf-8")):
            live, language, block = bool(match.group(1)), match.group(2).strip(), match.group(3)
            name = path.relative_to(PROJECT_DIR).as_posix()
            if language in COMMAND_LANGUAGES:
                found += [(name, language, live, command) for command in _commands(block)]
            else:
                found.append((name, language, live, ""))
    return found


def test_every_fenced_block_says_what_it_holds() -> None:
    for name, language, live, _ in _fenced():
        assert language in COMMAND_LANGUAGES | OTHER_LANGUAGES, f"{name}: a ``` block {language!r}"
        assert not live or language in COMMAND_LANGUAGES, f"{name}: live marks a {language} block"


def test_every_fenced_command_is_run_by_a_test_by_ci_or_marked_live() -> None:
    unchecked = []
    for name, _, live, command in _fenced():
        if not command:
            continue
        if live:
            program = command.split()[0]
            if program not in LIVE_PROGRAMS and not command.startswith("make verify"):
                unchecked.append(f"{name}: {command!r} is marked live but runs {program}")
        elif not any(re.fullmatch(pattern, command) for pattern, _ in RUN_BY):
            unchecked.append(f"{name}: {command!r} is run by no test, not by CI, not marked live")
    assert unchecked == []


@pytest.mark.parametrize(("pattern", "where"), RUN_BY, ids=[p for p, _ in RUN_BY])
def test_the_test_that_runs_a_documented_command_exists(pattern: str, where: str) -> None:
    if where == "ci":
        assert "make test" in (PROJECT_DIR / ".ci/run").read_text()
        prerequisites = re.search(r"(?m)^test:(.*)$", (PROJECT_DIR / "Makefile").read_text())
        assert prerequisites is not None
        assert {"test-deps", "unit"} <= set(prerequisites.group(1).split())
        # `make test` runs every marker's suite: nothing is deselected by default.
        assert "-m " not in (PROJECT_DIR / "pyproject.toml").read_text().split("addopts", 1)[1]
    elif where != "here":
        path, test = where.split("::")
        assert f"def {test}(" in (PROJECT_DIR / path).read_text(), where


def test_the_documented_plan_runs() -> None:
    """The plan of the documentation's example site, run as the docs write it."""
    command = next(p for p, where in RUN_BY if where == "here")
    result = subprocess.run(
        command.split(),
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Offline plan of stack espsrc" in result.stdout


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_make_help_lists_every_command_and_is_the_default() -> None:
    phony = re.search(r"(?m)^\.PHONY:(.*)$", (PROJECT_DIR / "Makefile").read_text())
    assert phony is not None
    help_text = _make("help")
    assert help_text.returncode == 0, help_text.stderr
    listed = set(re.findall(r"make ([a-z-]+(?: \| [a-z-]+)*)", help_text.stdout))
    names = {n for entry in listed for n in entry.split(" | ")}
    names |= set(re.findall(r"make [a-z-]+, ([a-z-]+)", help_text.stdout))
    assert set(phony.group(1).split()) - {"help"} <= names
    for usage in ("make new-site STACK=<name>", "make plan STACK=<site>",
                  "make verify STACK=<site>"):  # fmt: skip
        assert usage in help_text.stdout, usage
    # A bare `make` shows the same (-n: without running it), instead of building the first
    # file target, the venv.
    bare = _make("-n")
    assert bare.returncode == 0 and bare.stdout.split("\n")[0].startswith("echo 'Operator")


# Options the pages name that belong to other programs (pulumi, helm, `pulumi stack output`).
OTHER_PROGRAMS_OPTIONS = {
    "--show-secrets", "--kube-version", "--policy-pack", "--policy-pack-config", "--strict",
}  # fmt: skip


def _options(text: str) -> dict[str, str]:
    """--option -> the metavar written after it (empty for a flag)."""
    found: dict[str, str] = {}
    for option, metavar in re.findall(r"(--[a-z][a-z-]*)(?:[ =]([A-Z][A-Z_:=]*)\b)?", text):
        if option not in OTHER_PROGRAMS_OPTIONS and option != "--help":
            found[option] = found.get(option) or metavar
    return found


@pytest.mark.parametrize(
    ("command", "page"), [("verify", "after-deploying.md"), ("plan", "plan-and-policies.md")]
)
def test_the_help_and_the_page_name_the_same_options(command: str, page: str) -> None:
    """What `--help` offers is on the command's page, and the other way round, with the
    same placeholders (`--stack-file PATH` on both)."""
    result = subprocess.run(
        [sys.executable, "-m", "sitectl", command, "--help"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    usage = result.stdout.split("\n\n", 1)[0]
    helped = _options(usage)
    documented = _options((PROJECT_DIR / "docs" / page).read_text())
    assert set(helped) == set(documented)
    for option, metavar in documented.items():
        if metavar:
            assert helped[option] == metavar, f"{option}: --help says {helped[option]!r}"


def test_the_example_workflow_fetches_every_supported_chart() -> None:
    """Its tests run with skips refused, and every supported version's tests need its
    package: one missing from the fetch step fails that job."""
    from policy.chart_versions import SUPPORTED_CHARTS

    workflow = (PROJECT_DIR / ".github/workflows/preview.yml").read_text()
    fetched = re.search(r"-m sitectl charts ([0-9. ]+)\n", workflow)
    assert fetched is not None, "no `sitectl charts` step"
    assert sorted(fetched.group(1).split()) == sorted(SUPPORTED_CHARTS)
