"""A new site from the template: `make new-site`, fill the marked values, `make plan`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import PROJECT_DIR, TEMPLATE_PLACEHOLDER
from sitectl.newsite import TEMPLATE

# What an operator of another site puts at each "<fill in>" (documentation addresses only).
FILLED: dict[str, Any] = {
    "site.name": "newsrc",
    "site.hubHost": "jupyter.newsrc.example.org",
    "site.kubernetesVersion": "1.30",
    "hub.oauth.loginService": "Keycloak",
    "hub.oauth.clientId": "jupyterhub",
    "hub.oauth.authorizeUrl": "https://sso.example.org/realms/src/protocol/openid-connect/auth",
    "hub.oauth.tokenUrl": "https://sso.example.org/realms/src/protocol/openid-connect/token",
    "hub.oauth.userdataUrl": "https://sso.example.org/realms/src/protocol/openid-connect/userinfo",
    "hub.oauth.allowedGroups[0]": "/jupyter-users",
    "nodes.sshUser": "ubuntu",
    "nodes.hosts[0].name": "k3s-server-0",
    "nodes.hosts[0].address": "192.0.2.10",
    "nodes.hosts[0].hostKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEq1rN2ZsZ0lGkRz0vJk4Qbx",
    "share.shareType": "cephfsnativetype",
    "share.sizeGb": 1024,
    "share.cephUser": "newsrc-jupyterhub",
}  # fmt: skip


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


@pytest.fixture
def new_stack() -> Iterator[str]:
    """A stack name of this test's own; its stack file and plan are removed afterwards."""
    name = f"newsite-test-{os.getpid()}"
    yield name
    (PROJECT_DIR / f"Pulumi.{name}.yaml").unlink(missing_ok=True)
    shutil.rmtree(PROJECT_DIR / "build" / "plan" / name, ignore_errors=True)


def _set(doc: dict[str, Any], key: str, value: Any) -> None:
    section, *rest = re.findall(r"[^.\[\]]+", key)
    node: Any = doc["config"][f"jupyterhub-platform:{section}"]
    parts = [int(p) if p.isdigit() else p for p in rest]
    for part in parts[:-1]:
        node = node[part]
    assert node[parts[-1]] == TEMPLATE_PLACEHOLDER, f"{key} is not marked in the template"
    node[parts[-1]] = value


def test_the_template_marks_exactly_the_values_to_fill() -> None:
    text = TEMPLATE.read_text()
    marked = [
        line
        for line in text.splitlines()
        if f'"{TEMPLATE_PLACEHOLDER}"' in line and not line.lstrip().startswith("#")
    ]
    assert len(marked) == len(FILLED)
    assert all("# <- " in line for line in marked), "each placeholder says what goes there"
    assert "allowAll" not in text
    assert "espsrc" not in text.lower() and "userdataParams" not in text


def test_the_untouched_template_plans_to_the_list_of_values_to_fill(new_stack: str) -> None:
    assert make("new-site", f"STACK={new_stack}").returncode == 0
    result = make("plan", f"STACK={new_stack}")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert [line.split(":")[1].strip() for line in errors] == list(FILLED)
    assert all("is still '<fill in>', to be filled in" in line for line in errors)


def test_a_filled_in_template_plans_with_access_by_group(new_stack: str) -> None:
    written = make("new-site", f"STACK={new_stack}")
    assert written.returncode == 0, written.stderr
    path = PROJECT_DIR / f"Pulumi.{new_stack}.yaml"
    doc = yaml.safe_load(path.read_text())
    for key, value in FILLED.items():
        _set(doc, key, value)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))

    result = make("plan", f"STACK={new_stack}")
    assert result.returncode == 0, result.stdout + result.stderr
    values = yaml.safe_load((PROJECT_DIR / "build/plan" / new_stack / "values.yaml").read_text())
    oauth = values["hub"]["config"]["GenericOAuthenticator"]
    assert oauth["allowed_groups"] == ["/jupyter-users"]
    assert oauth.get("allow_all") is not True
    # A new site runs chart 4.4.0 (oauthenticator 17): the claim's path in the auth state,
    # and manage_groups, without which 17 refuses allowed_groups.
    assert values["hub"]["config"]["Authenticator"]["manage_groups"] is True
    assert oauth["auth_state_groups_key"] == "oauth_user.groups"
    assert oauth["enable_pkce"] is True


def test_new_site_keeps_an_existing_stack_file(new_stack: str) -> None:
    path = PROJECT_DIR / f"Pulumi.{new_stack}.yaml"
    path.write_text("config: {}\n")
    result = make("new-site", f"STACK={new_stack}")
    assert result.returncode == 2
    assert "exists; a new site needs a name of its own" in result.stderr
    assert path.read_text() == "config: {}\n"


@pytest.mark.parametrize("name", ["Bad_Name", "-x", 'a";touch PWNED;"'])
def test_new_site_refuses_a_name_that_is_not_a_dns_label(name: str, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    name = name.replace("PWNED", str(pwned))
    result = make("new-site", f"STACK={name}")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: STACK: {name!r} is not a DNS label")
    assert not (PROJECT_DIR / f"Pulumi.{name}.yaml").exists()
    assert not pwned.exists(), "the name reached a shell's parser"


@pytest.mark.parametrize("where", ["missing/folder", "file", "/proc"])
def test_new_site_refuses_a_dir_it_cannot_write_to(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each died with a FileNotFoundError or NotADirectoryError traceback."""
    from sitectl.__main__ import main

    (tmp_path / "file").write_text("")
    folder = tmp_path / where
    assert main(["new-site", "newsrc", "--dir", str(folder)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"error: --dir {folder}: "), err
    assert len(err.splitlines()) == 1, err


def test_a_host_key_left_to_fill_is_one_problem(new_stack: str) -> None:
    """The template's hostKey placeholder is reported as unfilled, not also as missing."""
    assert make("new-site", f"STACK={new_stack}").returncode == 0
    path = PROJECT_DIR / f"Pulumi.{new_stack}.yaml"
    doc = yaml.safe_load(path.read_text())
    for key, value in FILLED.items():
        if key != "nodes.hosts[0].hostKey":
            _set(doc, key, value)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = make("plan", f"STACK={new_stack}")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: nodes.hosts[0].hostKey: is still '<fill in>', to be filled in (pinned SSH host key)"
    ]


def test_the_templates_commented_settings_uncommented_plan(new_stack: str) -> None:
    """The template shows where the OpenStack cloud and the cluster's kubeconfig context go
    (without a context, `pulumi up` deploys to whichever is current), and the quota switch;
    uncommented as written, with the site's names, the stack plans."""
    assert make("new-site", f"STACK={new_stack}").returncode == 0
    path = PROJECT_DIR / f"Pulumi.{new_stack}.yaml"
    text = path.read_text()
    commented = re.findall(r"(?m)^( +)# ([A-Za-z:]+: \S+)$", text)
    assert [line.split(": ")[0] for _, line in commented] == [
        "openstack:cloud",
        "kubernetes:context",
        "enforceCapacity",
    ]
    assert f"kubernetes:context: {new_stack}-k3s" in [line for _, line in commented]
    for indent, line in commented:
        text = text.replace(f"{indent}# {line}\n", f"{indent}{line}\n")
    doc = yaml.safe_load(text)
    assert doc["config"]["kubernetes:context"] == f"{new_stack}-k3s"
    for key, value in FILLED.items():
        _set(doc, key, value)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = make("plan", f"STACK={new_stack}", "ARGS=--no-render")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "capacity-enforced" not in result.stdout
