"""`sitectl verify`: its input handling and its behaviour against a site that is not there.

The checks themselves run against real components in tests/login/test_verify.py (provider,
hub, proxy, HAProxy, a local user server) and tests/e2e/test_verify_mounts.py (Ceph, SSH).
Here: bad input exits 2 with one line, and a site whose every address is on 127.0.0.0/8
with nothing listening fails every check that can run, quickly, one line per check.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from sitectl.__main__ import main
from sitectl.verify import VerifyError, parse_resolve, read_ssh_key
from sitectl.verify_checks import discovery_candidates
from tests.login.processes import free_port, port_is_free
from tests.sites import ROOT, espsrc, site
from tests.verify_runner import run_verify, verify_env, write_stack

HOST = "notebook.espsrc.iaa.csic.es"


def unreachable_espsrc(tmp_path: Path) -> Path:
    """espsrc with its nodes at 127.0.0.2-4 and its provider on 127.0.0.1, where nothing
    listens (ports that were free a moment ago: a login test elsewhere on this machine
    may hold espsrc's NodePort)."""
    port = free_port()
    node_port = next(p for p in range(31090, 32768) if port_is_free(p))
    idp = f"https://127.0.0.1:{port}"
    hosts = [{**h, "address": f"127.0.0.{i + 2}"} for i, h in enumerate(espsrc()["nodes"]["hosts"])]
    return write_stack(
        tmp_path / "Pulumi.espsrc-local.yaml",
        site(
            **{
                "nodes.hosts": hosts,
                "hub.nodePort": node_port,
                "hub.oauth.authorizeUrl": f"{idp}/authorize",
                "hub.oauth.tokenUrl": f"{idp}/token",
                "hub.oauth.userdataUrl": f"{idp}/userinfo",
            }
        ),
    )


def test_unreachable_site_fails_fast_one_line_per_check(tmp_path: Path) -> None:
    """The acceptance case, through make as the operator runs it."""
    stack = unreachable_espsrc(tmp_path)
    report = tmp_path / "report.json"
    args = f"--stack-file {stack} --resolve {HOST}:127.0.0.1 --json {report}"
    started = time.monotonic()
    proc = subprocess.run(
        ["make", "-s", "verify", "STACK=espsrc", f"ARGS={args}"],
        cwd=ROOT,
        env=verify_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert elapsed < 30, f"took {elapsed:.1f} s"
    assert "Traceback" not in proc.stdout + proc.stderr
    assert args not in proc.stdout + proc.stderr, "make echoed the command line"
    data = json.loads(report.read_text())
    assert data["exitCode"] == 1
    # make passes verify's own code through (the Makefile's question mode), silently.
    assert proc.returncode == 1, proc.stderr
    assert "make: ***" not in proc.stderr
    results = data["results"]
    names = [r["name"] for r in results]
    assert names[:5] == ["DNS", "TLS certificate", "/hub/health", "login page", "https only"]
    assert [r["name"] for r in results if r["group"] == "node-ports"] == [
        "NodePort k8s-master-0",
        "NodePort k8s-workers-1",
        "NodePort k8s-workers-2",
    ]
    by_name = {r["name"]: r for r in results}
    assert by_name["DNS"]["status"] == "ok"  # --resolve answered it
    assert by_name["NodePort k8s-workers-2"]["status"] == "FAIL"
    assert "(at 127.0.0.4:" in by_name["NodePort k8s-workers-2"]["detail"]
    assert by_name["discovery"]["status"] == "FAIL"
    # Without outputs and an SSH key, the mounts are skipped with the reason.
    mounts = [r for r in results if r["group"] == "node-mounts"]
    assert len(mounts) == 3
    assert all(r["status"] == "skipped" and "share_export_path" in r["detail"] for r in mounts)
    # One line per check (advice lines indented under it), a header and a summary.
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Verifying stack espsrc: https://notebook.espsrc.iaa.csic.es/")
    assert len([ln for ln in lines if ln.split(" ", 1)[0] in ("ok", "FAIL", "skipped")]) == len(
        results
    )
    assert all(ln.startswith("        advice: ") for ln in lines if ln.startswith(" "))
    assert lines[-1].startswith(f"1 ok, {len(results) - 6} failed, 5 skipped in ")


def test_dependent_checks_are_skipped_when_discovery_fails(tmp_path: Path) -> None:
    proc, _ = run_verify(
        "espsrc", "--stack-file", str(unreachable_espsrc(tmp_path)), "--only", "identity-provider"
    )
    assert proc.returncode == 1
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("ok", "FAIL", "skipped"))]
    assert lines[0].startswith("FAIL    identity-provider  discovery: no discovery document: ")
    assert lines[1].startswith("skipped identity-provider  endpoints: needs the discovery")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch"], "error: unknown stack 'nosuch': there is no Pulumi.nosuch.yaml"),
        (["espsrc", "--resolve", "notebook.example.org"], "error: --resolve 'notebook.example"),
        (["espsrc", "--resolve", "host:not-an-ip"], "error: --resolve 'host:not-an-ip': expected"),
        (["espsrc", "--resolve", ":127.0.0.1"], "error: --resolve ':127.0.0.1': expected"),
        (["espsrc", "--only", "front"], "error: --only 'front': expected one of front-door,"),
        (
            ["espsrc", "--outputs", "/nonexistent.json"],
            "error: --outputs /nonexistent.json: cannot",
        ),
        (["espsrc", "--ca-file", "/nonexistent.pem"], "error: --ca-file /nonexistent.pem: is not"),
        (["a b"], "error: site 'a b': is not a stack name"),
        # These ran no check at all and exited 0, as if the site had passed.
        (["espsrc", "--only", "session"], "error: --only session: the session check runs only"),
        (["espsrc", "--only", "node-ports", "--skip", "node-ports"], "error: --only and --skip"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["verify", *args])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert out == ""
    assert err.startswith(message), err
    assert len(err.splitlines()) == 1, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # NaN compares false with 0, so it passed the check and bounded no check at all.
        (["--timeout", "nan"], "error: --timeout and --spawn-timeout: expected a"),
        (["--spawn-timeout", "inf"], "error: --timeout and --spawn-timeout: expected a"),
        # An empty --only ran every check.
        (["--only", ""], "error: --only '': expected one of front-door,"),
        # Written after every check had run, as a traceback.
        (["--json", "/"], "error: --json /: is a directory"),
        (["--json", "/nonexistent/r.json"], "error: --json /nonexistent/r.json: its folder"),
    ],
)
def test_bad_options_exit_2_before_any_check(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every address on 127.0.0.0/8, should a check run after all.
    local = ["--stack-file", str(unreachable_espsrc(tmp_path)), "--resolve", f"{HOST}:127.0.0.1"]
    only = [] if "--only" in args else ["--only", "front-door"]
    code = main(["verify", "espsrc", *local, *only, "--timeout", "2", *args])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert out == ""
    assert err.startswith(message), err
    assert len(err.splitlines()) == 1, err


def test_outputs_file_missing_a_key_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"hub_url": "https://x/", "oauth_callback_url": "y"}))
    assert main(["verify", "espsrc", "--outputs", str(outputs)]) == 2
    assert capsys.readouterr().err == (
        f"error: --outputs {outputs}: has no 'share_export_path'; expected the output of "
        "`pulumi stack output --json --show-secrets -s espsrc`\n"
    )


@pytest.mark.parametrize(
    "hub_url", ["https://notebook.other-site.example/", f"http://{HOST}/", "https://127.0.0.1/"]
)
def test_outputs_of_another_site_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hub_url: str
) -> None:
    """The session check sends the token to hub_url: never to another host, nor in clear."""
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({
        "hub_url": hub_url, "oauth_callback_url": f"{hub_url}hub/oauth_callback",
        "share_export_path": "m:6789:/volumes/x", "storage_class": "s",
        "health_check_token": "a-token-for-another-site",
    }))  # fmt: skip
    # --only session needs --spawn (no check left is refused); should the outputs pass,
    # the session reaches 127.0.0.1 at most (.example names resolve nowhere).
    local = ["--resolve", f"{HOST}:127.0.0.1", "--timeout", "2", "--spawn-timeout", "2"]
    args = ["--outputs", str(outputs), "--only", "session", "--spawn", *local]
    assert main(["verify", "espsrc", *args]) == 2
    assert capsys.readouterr().err == (
        f"error: --outputs {outputs}: hub_url '{hub_url}' is not on https://{HOST}/ as the "
        "stack file says (outputs of another stack?); verify sends the health-check token there\n"
    )


def test_bad_stack_config_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = write_stack(tmp_path / "Pulumi.bad.yaml", site(**{"hub.nodePort": 80}))
    assert main(["verify", "bad", "--stack-file", str(stack)]) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith("hub.nodePort: 80 is not in 30000-32767")
    assert len(err.splitlines()) == 1
    # Two problems, two lines, each an error line (as the plan prints them).
    stack = write_stack(stack, site(**{"hub.nodePort": 80, "share.sizeGb": 0}))
    assert main(["verify", "bad", "--stack-file", str(stack)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {stack}: hub.nodePort: 80 is not in 30000-32767",
        f"error: {stack}: share.sizeGb: 0 is not in 1-1000000",
    ]
    # A misspelt namespace: it said "hub: is missing".
    text = stack.read_text().replace("jupyterhub-platform:hub:", "jupyterhub-plaform:hub:")
    stack.write_text(text)
    assert main(["verify", "bad", "--stack-file", str(stack)]) == 2
    assert capsys.readouterr().err == (
        f"error: {stack}: jupyterhub-plaform:hub: is not read: its namespace is not "
        "jupyterhub-platform; did you mean jupyterhub-platform:hub?\n"
    )
    # An encrypted setting verify cannot read: it said "hub: is missing".
    settings = site(**{"nodes.hosts[1].hostKey": {"secure": "v1:AAAA"}})
    stack = write_stack(stack, settings)
    assert main(["verify", "bad", "--stack-file", str(stack)]) == 2
    assert capsys.readouterr().err == (
        "error: nodes.hosts[1].hostKey: is encrypted (secure:), which only the Pulumi CLI can "
        "decrypt, and only oauthClientSecret and sshPrivateKey are secrets: set it in plain text\n"
    )


def test_secrets_from_the_environment_never_shown(tmp_path: Path) -> None:
    token = "verify-token-8f1e2d3c4b5a69788796a5b4c3d2e1f0"
    key = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        "c2VjcmV0LWtleS1vZi10ZXN0cw==\n"
        "-----END OPENSSH PRIVATE KEY-----\n"
    )
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps(
            {
                "hub_url": f"https://{HOST}/",
                "oauth_callback_url": f"https://{HOST}/hub/oauth_callback",
                "share_export_path": "127.0.0.1:6789:/volumes/_nogroup/a/b",
                "storage_class": "cephfs-shared",
                "health_check_token": "[secret]",
            }
        )
    )
    proc, report = run_verify(
        "espsrc",
        "--stack-file",
        str(unreachable_espsrc(tmp_path)),
        "--outputs",
        str(outputs),
        "--resolve",
        f"{HOST}:127.0.0.1",
        "--spawn",
        "--only",
        "session,node-mounts",
        env={"JHP_VERIFY_TOKEN": token, "JHP_SECRET_sshPrivateKey": key},
        report=tmp_path / "r.json",
        hidden=(token, "c2VjcmV0LWtleS1vZi10ZXN0cw"),
    )
    assert proc.returncode == 1
    assert report is not None
    results = {r["name"]: r for r in report["results"]}
    # espsrc pins no host keys: no key is sent to an unpinned host.
    assert results["share k8s-master-0"]["status"] == "skipped"
    assert "hostKey is not set" in results["share k8s-master-0"]["detail"]
    assert results["spawn, use, stop"]["status"] == "FAIL"


def test_an_ssh_key_file_that_is_not_text_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"\xff\xfe-----BEGIN OPENSSH PRIVATE KEY-----\n")
    assert main(["verify", "espsrc", "--ssh-key-file", str(key), "--only", "node-mounts"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"error: --ssh-key-file {key}: cannot be read (not text)\n"


@pytest.mark.parametrize("openssh_format", [True, False], ids=["openssh", "pem"])
def test_the_key_verify_hands_ssh_is_one_ssh_reads(tmp_path: Path, openssh_format: bool) -> None:
    """A key saved with CRLF line ends and blanks, which the program logs in with, is
    written for ssh in the form it reads (OpenSSH refuses its own format with CRLF)."""
    options = ["-t", "ecdsa", "-N", "", "-C", ""] + ([] if openssh_format else ["-m", "PEM"])
    subprocess.run(
        ["ssh-keygen", "-q", *options, "-f", str(tmp_path / "k")],
        check=True,
        timeout=60,
    )
    saved = tmp_path / "saved"
    saved.write_bytes((tmp_path / "k").read_bytes().replace(b"\n", b" \r\n") + b"# note\r\n")
    key, _ = read_ssh_key(saved)
    assert key is not None
    written = tmp_path / "written"
    written.touch(mode=0o600)
    written.write_text(key)
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(written)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert derived.returncode == 0, derived.stderr
    assert derived.stdout.split()[:2] == (tmp_path / "k.pub").read_text().split()[:2]


def test_an_ssh_key_that_is_no_private_key_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A public key, or a path in $JHP_SECRET_sshPrivateKey, is bad input (exit 2), not a
    failed SSH login reported on every node."""
    public = tmp_path / "key.pub"
    public.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ1c3RlZC1ub3QtYS1yZWFsLWtleS0wMDAw\n")
    assert main(["verify", "espsrc", "--ssh-key-file", str(public), "--only", "node-mounts"]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == (
        "",
        f"error: --ssh-key-file {public}: is a public key, not the private key\n",
    )
    monkeypatch.setenv("JHP_SECRET_sshPrivateKey", "~/.ssh/espsrc_ed25519")
    assert main(["verify", "espsrc", "--only", "node-mounts"]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", "error: $JHP_SECRET_sshPrivateKey: is a file path, not the key\n")


def test_discovery_candidates_cover_iam_and_keycloak() -> None:
    assert discovery_candidates("https://ska-iam.stfc.ac.uk/authorize", None) == [
        "https://ska-iam.stfc.ac.uk/.well-known/openid-configuration"
    ]
    keycloak = "https://sso.example.org/realms/srcnet/protocol/openid-connect/auth"
    candidates = discovery_candidates(keycloak, None)
    assert candidates[0] == "https://sso.example.org/.well-known/openid-configuration"
    assert "https://sso.example.org/realms/srcnet/.well-known/openid-configuration" in candidates
    assert discovery_candidates(keycloak, "https://sso.example.org/realms/srcnet/") == [
        "https://sso.example.org/realms/srcnet/.well-known/openid-configuration"
    ]


def test_resolve_takes_ipv4_and_ipv6() -> None:
    assert parse_resolve(["Hub.Example.org:192.0.2.1", "hub6.example.org:[2001:db8::1]"]) == {
        "hub.example.org": "192.0.2.1",
        "hub6.example.org": "2001:db8::1",
    }
    # An IPv6 address without brackets cannot be told from a port: refused, not guessed.
    with pytest.raises(VerifyError, match=r"^--resolve 'hub.example.org:2001:db8::1': expected"):
        parse_resolve(["hub.example.org:2001:db8::1"])


# -- a hub that echoes the request's credentials ------------------------------------------
ECHO_TOKEN = "c0ffee" * 10 + "d00d"
# Where verify cuts a body it quotes: the token is echoed so that the cut falls at each
# place inside it (and just before and after).
BODY_LIMIT = 200


class _EchoingHub:
    """A hub on 127.0.0.1 that answers the health check's calls with bodies echoing its
    Authorization header: `where` says which answer (the user's record, or the spawn's
    progress stream), `pad` how much text comes before the header."""

    def __init__(self, where: str) -> None:
        import http.server
        import threading

        self.pad = 0
        hub = self

        def echo(handler: http.server.BaseHTTPRequestHandler) -> bytes:
            return ("x" * hub.pad + handler.headers.get("Authorization", "")).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.endswith("/server/progress") or where == "user":
                    self._answer(403, echo(self))
                else:
                    self._answer(200, b'{"name": "platform-health-check", "servers": {}}')

            def do_POST(self) -> None:
                self._answer(202, b"")

            def do_DELETE(self) -> None:
                self._answer(204, b"")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("where", ["user", "progress"])
def test_an_echoed_token_is_never_shown_even_in_part(where: str) -> None:
    """A body quoted in a failure is cut short; the token must be replaced before the cut,
    or the cut leaves a part of it that the last guard no longer recognises."""
    from sitectl.probe import Client
    from sitectl.verify import Inputs, load_site, run_checks

    site = load_site(ROOT / "Pulumi.espsrc.yaml", ROOT)
    hub = _EchoingHub(where)
    inputs = Inputs(
        stack="espsrc",
        site=site,
        outputs={"hub_url": hub.url},
        outputs_note="test",
        client=Client(),
        token=ECHO_TOKEN,
    )
    try:
        # How much comes before the header: the cut falls at every place in the token.
        for pad in range(BODY_LIMIT - len("token ") - len(ECHO_TOKEN) - 2, BODY_LIMIT + 2):
            hub.pad = pad
            [result] = run_checks(inputs, ["session"], lambda _: None, lambda _: None)
            assert result.status == "FAIL"
            shown = result.detail + result.advice
            assert "x" * 20 in shown, f"the body is not quoted: {shown}"
            assert ECHO_TOKEN[:4] not in shown, f"part of the token shown (pad {pad}): {shown}"
    finally:
        hub.close()
