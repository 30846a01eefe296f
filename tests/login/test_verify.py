"""`sitectl verify` against the login suite's real stack: provider, hub, proxy, HAProxy.

Every site here is the program's own output for a stack (see generated.py), served by
HAProxy with TLS on 127.0.0.1:443 in front of configurable-http-proxy on three loopback
"nodes" and JupyterHub 4.0.2, with oidc-provider as the identity provider. Verify runs as
the operator runs it, as a subprocess, against that stack's file and outputs, with
`--resolve hub.example.test:127.0.0.1` and the test CA. User servers run as local
processes (jupyter-server started by the hub's SimpleLocalProcessSpawner) in the place of
KubeSpawner's pods: the session check starts, uses and stops one for real.

Each broken site breaks one thing the runbook's troubleshooting names, and verify must
name it with its advice while the other checks still pass.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.verify_runner import run_verify, write_stack

from .chain import HUB_HOST, LoginChain, RunningSite, SiteSpec

pytestmark = [pytest.mark.login, pytest.mark.timeout(300)]

SITES = [
    SiteSpec("verify-ok", spawner="local"),
    # The provider has the callback of an older deployment, and the hub requests one
    # scope less than the stack says.
    SiteSpec(
        "verify-idp",
        registered_base_url="/old-hub/",
        scopes=("openid", "profile", "email"),
    ),
    # node-3's NodePort does not answer, and HAProxy's backend lacks X-Forwarded-Proto.
    SiteSpec("verify-front", down_nodes=("node-3",), forwarded_proto=False, spawner="local"),
    SiteSpec("verify-cert", tls_name="other.example.test"),
    SiteSpec("verify-pvc", spawner="pending-claim"),
]


def verify(
    chain: LoginChain,
    site: RunningSite,
    tmp_path: Path,
    *args: str,
    stack_changes: dict[str, Any] | None = None,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run `python -m sitectl verify` on the site's stack; return the process and report."""
    generated = site.config.generated
    settings = dict(generated.settings)
    if site.config.spec.scopes is not None:
        # The stack asks for every scope; the hub running here was deployed without one.
        settings["hub"] = json.loads(json.dumps(settings["hub"]))
        settings["hub"]["oauth"]["scopes"] = ["openid", "profile", "email", "offline_access"]
    settings.update(stack_changes or {})
    stack_file = write_stack(tmp_path / "Pulumi.login.yaml", settings)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(generated.outputs))
    outputs.chmod(0o600)
    proc, report = run_verify(
        "login",
        "--stack-file",
        str(stack_file),
        "--outputs",
        str(outputs),
        "--ca-file",
        str(chain.ca.cert_path),
        "--resolve",
        f"{HUB_HOST}:127.0.0.1",
        "--skip",
        "node-mounts",
        *args,
        report=tmp_path / "report.json",
        hidden=[generated.outputs["health_check_token"]],
        timeout=120,
    )
    assert report is not None, proc.stderr
    return proc, report


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in report["results"]}


def failed(report: dict[str, Any]) -> set[str]:
    return {r["name"] for r in report["results"] if r["status"] == "FAIL"}


def test_healthy_site_passes_every_check_with_a_real_session(
    login_chain: LoginChain, tmp_path: Path
) -> None:
    site = login_chain.open_site("verify-ok")
    started = time.monotonic()
    proc, report = verify(login_chain, site, tmp_path, "--spawn")
    wall = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout
    results = report["results"]
    assert {r["group"] for r in results} == {
        "front-door",
        "node-ports",
        "identity-provider",
        "session",
    }
    assert [r for r in results if r["status"] != "ok"] == [], proc.stdout
    session = by_name(report)["spawn, use, stop"]
    assert "ready" in session["detail"] and "server stopped" in session["detail"]
    # One line per check (and a summary), one progress line per check on stderr.
    lines = [line for line in proc.stdout.splitlines() if line.startswith("ok ")]
    assert len(lines) == len(results)
    assert len([p for p in proc.stderr.splitlines() if p.startswith("... ")]) == len(results)
    # The health-check user's server is gone again, and its file was written for real.
    user = site.api("users/platform-health-check")
    assert user["servers"] == {}
    print(f"full verify of the test site, spawn included: {wall:.1f} s")
    assert wall < 30, f"a healthy site took {wall:.1f} s to verify"


def test_callback_mismatch_and_missing_scope_are_named(
    login_chain: LoginChain, tmp_path: Path
) -> None:
    site = login_chain.open_site("verify-idp")
    proc, report = verify(login_chain, site, tmp_path)
    assert proc.returncode == 1
    assert failed(report) == {"callback registered", "authorization request"}, proc.stdout
    results = by_name(report)
    callback = results["callback registered"]
    assert "refuses the callback https://hub.example.test/hub/oauth_callback" in callback["detail"]
    assert callback["advice"].startswith("user cannot log in: register exactly ")
    scopes = results["authorization request"]
    assert "offline_access missing" in scopes["detail"]
    assert "openid profile email offline_access" in scopes["advice"]
    assert "advice: user cannot log in" in proc.stdout


def test_node_port_down_and_plain_http_are_named(login_chain: LoginChain, tmp_path: Path) -> None:
    site = login_chain.open_site("verify-front")
    proc, report = verify(login_chain, site, tmp_path, "--spawn")
    assert proc.returncode == 1
    assert failed(report) == {"NodePort node-3", "spawn, use, stop"}, proc.stdout
    results = by_name(report)
    assert "node-3" in results["NodePort node-3"]["advice"]
    assert results["NodePort node-1"]["status"] == results["NodePort node-2"]["status"] == "ok"
    session = results["spawn, use, stop"]
    assert (
        "without Secure: the server believes the browser came over plain http"
        in (session["detail"])
    )
    assert "X-Forwarded-Proto https" in session["advice"]
    assert site.api("users/platform-health-check")["servers"] == {}, "the server was stopped"


def test_certificate_for_another_name_is_named(login_chain: LoginChain, tmp_path: Path) -> None:
    site = login_chain.open_site("verify-cert")
    proc, report = verify(login_chain, site, tmp_path, "--only", "front-door")
    assert proc.returncode == 1
    tls = by_name(report)["TLS certificate"]
    assert tls["status"] == "FAIL"
    assert "TLS certificate rejected" in tls["detail"] and HUB_HOST in tls["detail"]
    assert tls["advice"].startswith(
        f"the HAProxy frontend must serve a certificate valid for {HUB_HOST}"
    )
    assert by_name(report)["DNS"]["status"] == "ok"


def test_a_claim_that_cannot_bind_gives_the_storage_class_advice(
    login_chain: LoginChain, tmp_path: Path
) -> None:
    site = login_chain.open_site("verify-pvc")
    proc, report = verify(
        login_chain, site, tmp_path, "--only", "session", "--spawn", "--spawn-timeout", "4"
    )
    assert proc.returncode == 1
    session = by_name(report)["spawn, use, stop"]
    assert session["status"] == "FAIL"
    assert "not ready within 4 s" in session["detail"]
    assert "unbound immediate PersistentVolumeClaims" in session["detail"]
    assert "storage class cephfs-shared" in session["advice"]
    assert "claim stays Pending" in session["advice"]
