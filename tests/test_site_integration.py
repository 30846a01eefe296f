"""Site integration: the OAuth client secret from Vault, and the HAProxy front door."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from components.config import ConfigError
from sitectl.mockrun import ProgramRun, reveal
from tests.hubenv import load_in_hub
from tests.sites import (
    OAUTH_SECRET,
    SECRETS,
    chart_defaults,
    chart_schema,
    deep_merge,
    run,
    site,
)
from tests.test_plan import plan
from tools.graph import dependency_graph, depends_on

EXTERNAL_SECRET = "kubernetes:external-secrets.io/v1:ExternalSecret"
RELEASE = "kubernetes:helm.sh/v3:Release"
VAULT = {
    "secrets": {
        "source": "vault",
        "vault": {
            "storeName": "vault-backend",
            "storeKind": "SecretStore",
            "remoteKey": "jupyterhub/espsrc/oauth",
            "property": "client_secret",
        },
    }
}
SSH_ONLY = {"sshPrivateKey": SECRETS["sshPrivateKey"]}


def vault_site(**changes: Any) -> dict[str, Any]:
    settings = site(**changes)
    settings.update(VAULT)
    return settings


@pytest.fixture(scope="module")
def vault_run() -> ProgramRun:
    return run(vault_site(), SSH_ONLY).ok()


def test_vault_mode_registers_the_external_secret(vault_run: ProgramRun) -> None:
    secret = vault_run.one(EXTERNAL_SECRET)
    assert secret.inputs["apiVersion"] == "external-secrets.io/v1"
    assert secret.inputs["metadata"] == {
        "name": "jupyterhub-oauth-client",
        "namespace": "jhub-srcnet",
    }
    spec = secret.inputs["spec"]
    assert spec["secretStoreRef"] == {"name": "vault-backend", "kind": "SecretStore"}
    assert spec["data"] == [
        {
            "secretKey": "client-secret",
            "remoteRef": {"key": "jupyterhub/espsrc/oauth", "property": "client_secret"},
        }
    ]
    assert spec["target"]["name"] == "jupyterhub-oauth-client"
    namespace = vault_run.named("hub-namespace")
    assert secret.parent == vault_run.named("hub").urn
    assert namespace.urn in vault_run.direct_dependencies(secret)
    graph = dependency_graph(vault_run)
    assert depends_on(graph, vault_run.one(RELEASE).urn, secret.urn)


def test_vault_mode_keeps_the_secret_out_of_values(vault_run: ProgramRun) -> None:
    values = reveal(vault_run.one(RELEASE).inputs["values"])
    assert "client_secret" not in values["hub"]["config"]["GenericOAuthenticator"]
    assert values["hub"]["extraEnv"] == {
        "OAUTH_CLIENT_SECRET": {
            "valueFrom": {
                "secretKeyRef": {"name": "jupyterhub-oauth-client", "key": "client-secret"}
            }
        }
    }
    merged = deep_merge(chart_defaults(), values)
    assert list(jsonschema.Draft7Validator(chart_schema()).iter_errors(merged)) == []
    for res in vault_run.resources:
        assert OAUTH_SECRET not in json.dumps(reveal(res.inputs), default=str), res.name


def test_the_hub_reads_the_secret_from_its_environment(vault_run: ProgramRun) -> None:
    values = reveal(vault_run.one(RELEASE).inputs["values"])
    version = vault_run.one(RELEASE).inputs["version"]
    case = {"values": values, "env": {"OAUTH_CLIENT_SECRET": "from-the-kubernetes-secret"}}
    report = load_in_hub(version, {"vault": case})["vault"]["authenticator"]
    assert report["warnings"] == []
    assert report["traits"]["client_secret"] == "from-the-kubernetes-secret"


def test_pulumi_mode_has_no_external_secret() -> None:
    result = run().ok()
    assert result.by_type(EXTERNAL_SECRET) == []
    assert "extraEnv" not in reveal(result.one(RELEASE).inputs["values"])["hub"]


@pytest.mark.parametrize(
    ("settings", "secrets", "message"),
    [
        (
            vault_site(),
            SECRETS,
            "oauthClientSecret: is set, but secrets.source is vault and the hub reads the "
            "secret from Vault; remove it with `pulumi config rm oauthClientSecret`",
        ),
        (
            site(**{"secrets": {"source": "vault"}}),
            SSH_ONLY,
            "secrets.vault: null is required with source: vault",
        ),
        (
            site(
                **{"secrets": {"source": "vault", "vault": {"storeName": "x", "remoteKey": "../a"}}}
            ),
            SSH_ONLY,
            'secrets.vault.remoteKey: "../a" is not a secret path such as jupyterhub/espsrc/oauth',
        ),
        (
            site(**{"secrets": {"source": "environment"}}),
            SSH_ONLY,
            "secrets.source: \"environment\" is not one of 'pulumi' or 'vault'",
        ),
        (
            site(),
            SSH_ONLY,
            "oauthClientSecret: is missing; set it with "
            "`pulumi config set --secret oauthClientSecret ...`",
        ),
    ],
)
def test_secret_source_errors(
    settings: dict[str, Any], secrets: dict[str, str], message: str
) -> None:
    result = run(settings, secrets)
    assert isinstance(result.error, ConfigError)
    assert str(result.error) == message
    assert result.resources == []


def test_plan_of_the_vault_example_shows_the_external_secret(tmp_path: Path) -> None:
    result = plan("example-vault", "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert any(r["type"] == EXTERNAL_SECRET for r in document["resources"])
    assert [p["key"] for p in document["placeholders"]] == ["sshPrivateKey"]
    assert (tmp_path / "manifests" / "externalsecret-hub-oauth-secret.yaml").exists()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "client_secret:" not in text, path
            assert "oauthClientSecret" not in text, path


# -- HAProxy -----------------------------------------------------------------------------

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
requires_haproxy = pytest.mark.skipif(
    not os.path.exists(HAPROXY),
    reason="haproxy is not installed and could not be (make test installs it as root with apt)",
)


def haproxy_output(result: ProgramRun) -> str:
    text = result.outputs["haproxy_config"]
    assert isinstance(text, str)
    return text


def wrapped(snippet: str) -> str:
    """The site's own HAProxy configuration around the program's lines."""
    frontend, _, backend = snippet.partition("# 2. A backend of its own:\n")
    return (
        "global\n    log stdout format raw local0\n"
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 50s\n"
        "    timeout server 50s\n"
        "frontend https-in\n    bind 127.0.0.1:8443\n"
        f"{frontend}"
        "    default_backend other\n"
        "backend other\n    server other 127.0.0.1:9000\n"
        f"{backend}"
    )


def haproxy_check(tmp_path: Path, config: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "haproxy.cfg"
    path.write_text(config)
    return subprocess.run(
        [HAPROXY, "-c", "-f", str(path)], capture_output=True, text=True, check=False
    )


@requires_haproxy
@pytest.mark.parametrize("variant", ["espsrc", "ipv6-base-url"])
def test_haproxy_lines_pass_haproxy_check(tmp_path: Path, variant: str) -> None:
    changes: dict[str, Any] = {}
    if variant == "ipv6-base-url":
        changes = {"nodes.hosts[1].address": "2001:db8::15", "hub.baseUrl": "/jhub/"}
    snippet = haproxy_output(run(site(**changes)).ok())
    result = haproxy_check(tmp_path, wrapped(snippet))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout + result.stderr


@requires_haproxy
def test_haproxy_check_is_not_vacuous(tmp_path: Path) -> None:
    snippet = haproxy_output(run().ok()).replace("balance roundrobin", "balance roundrobbin")
    assert haproxy_check(tmp_path, wrapped(snippet)).returncode != 0


def test_haproxy_lines_cover_the_front_door() -> None:
    text = haproxy_output(run().ok())
    assert "acl host_jupyterhub_espsrc hdr(host) -i notebook.espsrc.iaa.csic.es" in text
    assert "use_backend jupyterhub_espsrc if host_jupyterhub_espsrc" in text
    assert "balance roundrobin" in text
    assert "http-request set-header X-Forwarded-Proto https" in text
    assert "uri /hub/health" in text and "hdr Host notebook.espsrc.iaa.csic.es" in text
    servers = [line.strip() for line in text.splitlines() if line.strip().startswith("server ")]
    assert servers == [
        "server k8s-master-0 192.168.250.83:31090 check",
        "server k8s-workers-1 192.168.250.195:31090 check",
        "server k8s-workers-2 192.168.250.214:31090 check",
    ]


def test_haproxy_lines_follow_nodes_and_node_port() -> None:
    base = haproxy_output(run().ok())
    fewer = haproxy_output(run(site(**{"nodes.hosts": site()["nodes"]["hosts"][:2]})).ok())
    port = haproxy_output(run(site(**{"hub.nodePort": 31999})).ok())
    assert base not in (fewer, port)
    assert fewer.count("    server ") == 2
    assert port.count(":31999 check") == 3 and ":31090" not in port
