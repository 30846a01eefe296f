"""The checks of `sitectl verify`, by group, each with the runbook's advice for its failure.

Each check takes the run's inputs and a deadline, and returns the detail of its ok line or
raises `CheckSkipped` or `CheckFailed` (with advice). They talk to the site only through
`sitectl.probe.Client` (HTTP, honouring --resolve and --ca-file) and the system's ssh
client (pinned host keys only).
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from components.config import REQUIRED_SCOPES, NodeHost
from components.hub_values import HEALTH_CHECK_USER
from components.node_scripts import MountSettings, remote_command
from sitectl.probe import ProbeError, Response, certificate_summary, redact
from sitectl.verify import Check, CheckFailed, CheckSkipped, Deadline, Inputs

# The runbook's troubleshooting, as advice lines.
ADVICE_DNS = (
    "add the DNS record of {host} pointing at the site's HAProxy; to check the site before, "
    "pass --resolve {host}:ADDRESS"
)
ADVICE_TLS = (
    "the HAProxy frontend must serve a certificate valid for {host}: add it to the "
    "frontend's `bind ... ssl crt` (a certificate for another name fails every browser)"
)
ADVICE_FRONT = (
    "the hub does not answer through HAProxy: check that the haproxy_config output's lines "
    "are in the frontend and backend, `haproxy -c`, and `kubectl get pods -n {namespace}` "
    "(hub and proxy Running)"
)
ADVICE_HTTP = (
    "the hub believes it is served over plain http: the backend needs "
    "`http-request set-header X-Forwarded-Proto https` (as in the haproxy_config output), "
    "otherwise it builds http:// URLs and insecure cookies"
)
ADVICE_NODEPORT = (
    "NodePort {port} on {node} does not answer: check the proxy pod and kube-proxy on that "
    "node (`kubectl get pods -n {namespace} -o wide`, `kubectl get svc -n {namespace}`); "
    "HAProxy takes it out of the backend meanwhile"
)
ADVICE_IDP = (
    "the identity provider's endpoints must be reachable from the hub and the users: check "
    "hub.oauth.authorizeUrl/tokenUrl/userdataUrl (and hub.oauth.issuer) against the "
    "provider's discovery document"
)
ADVICE_CALLBACK = (
    "user cannot log in: register exactly {callback} as the redirect URI of client "
    "{client_id} at the provider, and use that client's id and secret "
    "(runbook: 'User cannot log in')"
)
ADVICE_SCOPES = (
    "user cannot log in: the hub must request the scopes {scopes}; set hub.oauth.scopes "
    "and run `pulumi up` (runbook: 'User cannot log in')"
)
ADVICE_CLIENT = (
    "the hub's authorization request does not match the stack: run `pulumi up` so the hub "
    "gets hub.oauth's client id, callback URL and scopes"
)
ADVICE_SHARE = (
    "node {node} does not have the share at {path}: run `pulumi up` (its mount step mounts "
    "it again) or `mount {path}` on the node; user volumes there are on the node's own disk "
    "until then"
)
ADVICE_KEY = "on {node}: `chmod 600 {file}` (the cephx key must be readable by root only)"
ADVICE_FSTAB = (
    "on {node} the fstab line for {path} differs from what the mount step writes: run "
    "`pulumi up` to rewrite it (a reboot would not mount the share)"
)
ADVICE_GUARD = (
    "on {node} k3s is not held back until the share is mounted: run `pulumi up` to write "
    "the drop-in (pods would start on the node's own disk after a reboot)"
)
ADVICE_SSH = (
    "verify cannot reach {node} over SSH: check nodes.hosts' address and hostKey "
    "(`ssh-keyscan -t ed25519 {address}`), nodes.sshUser and the key"
)
ADVICE_PVC = (
    "the session cannot be created: the user's claim stays Pending; the storage class "
    "{storage_class} must exist and provision on the share (`kubectl get pvc -A`, "
    "`kubectl describe pvc -n {namespace}`; runbook: 'The session cannot be created')"
)
ADVICE_SPAWN = (
    "the server did not start: see the events above and "
    "`kubectl get pods,pvc,events -n {namespace}`"
)

# KubeSpawner relays the pod's events; the scheduler's says so when a claim cannot bind.
PVC_PENDING = re.compile(
    r"unbound (immediate )?PersistentVolumeClaims?|persistentvolumeclaim \S+ (not found|is "
    r"being deleted)|waiting for (a volume|first consumer)|\bclaim\S* \S*pending",
    re.IGNORECASE,
)
# How providers say that a redirect URI is not registered for the client.
REDIRECT_REFUSED = re.compile(
    r"redirect[_ ]?uri[^<\n]{0,80}(did not match|mismatch|not (registered|allowed|valid)"
    r"|invalid)|(invalid|mismatched|unregistered)[_ ](parameter: )?redirect[_ ]?uri",
    re.IGNORECASE,
)
DISCOVERY = "/.well-known/openid-configuration"
# Not a hidden file: jupyter-server refuses those by default.
TEST_FILE = "platform-health-check.txt"


def _fmt(text: str, inputs: Inputs, **more: Any) -> str:
    site = inputs.site
    return text.format(
        host=site.site.hub_host,
        namespace=site.hub.namespace,
        callback=inputs.callback_url,
        client_id=site.hub.oauth.client_id,
        storage_class=inputs.output("storage_class") or site.storage.class_name,
        **more,
    )


def _get(inputs: Inputs, url: str, deadline: Deadline, advice: str = "") -> Response:
    try:
        return inputs.client.request("GET", url, timeout=deadline.left())
    except ProbeError as err:
        raise CheckFailed(str(err), advice) from None


def _front(inputs: Inputs, path: str) -> str:
    return urllib.parse.urljoin(inputs.hub_url, path)


# -- 1. front door -----------------------------------------------------------------
def check_dns(inputs: Inputs, deadline: Deadline) -> str:
    host = inputs.site.site.hub_host
    if host.lower() in inputs.client.resolve:
        return f"{host} -> {inputs.client.resolve[host.lower()]} (--resolve; DNS not asked)"
    found: list[str] = []
    error: list[BaseException] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
            found.extend(sorted({str(info[4][0]) for info in infos}))
        except OSError as err:
            error.append(err)

    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(deadline.left(5.0))
    if worker.is_alive():
        raise CheckFailed(f"{host}: no DNS answer within 5 s", _fmt(ADVICE_DNS, inputs))
    if error or not found:
        why = getattr(error[0], "strerror", None) if error else "no address"
        raise CheckFailed(f"{host} does not resolve ({why})", _fmt(ADVICE_DNS, inputs))
    return f"{host} -> {', '.join(found)}"


def check_tls(inputs: Inputs, deadline: Deadline) -> str:
    parts = urllib.parse.urlsplit(inputs.hub_url)
    host, port = parts.hostname or "", parts.port or 443
    try:
        summary = certificate_summary(inputs.client, host, port, deadline.left())
    except ProbeError as err:
        advice = ADVICE_TLS if "certificate" in str(err) else ADVICE_FRONT
        raise CheckFailed(str(err), _fmt(advice, inputs)) from None
    return f"certificate valid for {host} ({summary})"


def _front_page(inputs: Inputs, path: str, deadline: Deadline) -> tuple[str, Response]:
    """The hub page at `path` through the front door; anything but a 200 fails the check."""
    url = _front(inputs, path)
    answer = _get(inputs, url, deadline, advice=_fmt(ADVICE_FRONT, inputs))
    if answer.status != 200:
        raise CheckFailed(f"{url} answered {answer.status}, not 200", _fmt(ADVICE_FRONT, inputs))
    return url, answer


def check_health(inputs: Inputs, deadline: Deadline) -> str:
    url, _ = _front_page(inputs, "hub/health", deadline)
    return f"{url} 200"


def check_login_page(inputs: Inputs, deadline: Deadline) -> str:
    url, answer = _front_page(inputs, "hub/login", deadline)
    if "oauth_login" not in answer.text():
        raise CheckFailed(
            f"{url} has no link to the provider's login (oauth_login)", _fmt(ADVICE_CLIENT, inputs)
        )
    return f"{url} 200 with the login button"


def check_https_only(inputs: Inputs, deadline: Deadline) -> str:
    """Follow the hub's redirects from its URL and from its login: none may lead to http://.
    (The cookies show whether the X-Forwarded-Proto line is at work, but only a user
    server's: the hub reads the last proxy's protocol, which is always http behind the
    chart's proxy. The session check looks at them.)"""
    url = inputs.hub_url
    hops = [url]
    for _ in range(8):
        answer = _get(inputs, url, deadline, advice=_fmt(ADVICE_FRONT, inputs))
        location = answer.header("Location")
        if answer.status not in (301, 302, 303, 307, 308) or not location:
            break
        target = urllib.parse.urljoin(url, location)
        if target.startswith("http://"):
            raise CheckFailed(f"{url} redirects to {target}", _fmt(ADVICE_HTTP, inputs))
        if urllib.parse.urlsplit(target).hostname != urllib.parse.urlsplit(url).hostname:
            break
        url = target
        hops.append(url)
    login = _front(inputs, "hub/oauth_login")
    answer = _get(inputs, login, deadline, advice=_fmt(ADVICE_FRONT, inputs))
    location = answer.header("Location") or ""
    if location.startswith("http://"):
        raise CheckFailed(f"{login} redirects to {location}", _fmt(ADVICE_HTTP, inputs))
    return f"{' -> '.join(hops)}; no redirect to http://"


def _secure(cookie: str) -> bool:
    return any(part.strip().lower() == "secure" for part in cookie.split(";")[1:])


# -- 2. node ports -----------------------------------------------------------------
def node_port_check(node: NodeHost) -> Check:
    def check(inputs: Inputs, deadline: Deadline) -> str:
        hub = inputs.site.hub
        host = inputs.site.site.hub_host
        url = f"http://{host}:{hub.node_port}{hub.base_url}hub/health"
        advice = _fmt(ADVICE_NODEPORT, inputs, port=hub.node_port, node=node.name)
        try:
            answer = inputs.client.request(
                "GET", url, timeout=deadline.left(5.0), connect_to=node.address
            )
        except ProbeError as err:
            raise CheckFailed(f"{node.name}: {err}", advice) from None
        if answer.status != 200:
            raise CheckFailed(
                f"{node.name}: {url} via {node.address} answered {answer.status}", advice
            )
        return f"{node.address}:{hub.node_port} {hub.base_url}hub/health 200 (Host: {host})"

    return check


# -- 3. identity provider ----------------------------------------------------------
def discovery_candidates(authorize_url: str, issuer: str | None) -> list[str]:
    """Where the discovery document may be: the issuer's, else the authorize URL's origin
    and each of its parent paths (INDIGO IAM serves it at the origin, Keycloak under the
    realm: .../realms/<realm>)."""
    if issuer:
        return [issuer.rstrip("/") + DISCOVERY]
    parts = urllib.parse.urlsplit(authorize_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    segments = [s for s in parts.path.split("/") if s]
    found = [origin + DISCOVERY]
    for i in range(len(segments) - 1, 0, -1):
        found.append(origin + "/" + "/".join(segments[:i]) + DISCOVERY)
    return list(dict.fromkeys(found))


def _discovery(inputs: Inputs, deadline: Deadline) -> tuple[str, dict[str, Any]]:
    cache = inputs.cache.setdefault("discovery", {})
    if "doc" in cache:
        return cache["url"], cache["doc"]
    if "error" in cache:
        raise CheckSkipped("needs the discovery document, which the discovery check did not get")
    oauth = inputs.site.hub.oauth
    tried = []
    for url in discovery_candidates(oauth.authorize_url, oauth.issuer):
        try:
            answer = inputs.client.request("GET", url, timeout=deadline.left(4.0))
        except ProbeError as err:
            tried.append(str(err))
            continue
        if answer.status != 200:
            tried.append(f"{url} answered {answer.status}")
            continue
        try:
            doc = json.loads(answer.body)
        except ValueError:
            tried.append(f"{url} is not JSON")
            continue
        if isinstance(doc, dict) and isinstance(doc.get("issuer"), str):
            if doc["issuer"].rstrip("/") + DISCOVERY != url:
                tried.append(f"{url} names another issuer {doc['issuer']}")
                continue
            cache.update(url=url, doc=doc)
            return url, doc
        tried.append(f"{url} has no issuer")
    cache["error"] = "no discovery document: " + "; ".join(tried)
    raise CheckFailed(cache["error"], _fmt(ADVICE_IDP, inputs))


def check_discovery(inputs: Inputs, deadline: Deadline) -> str:
    url, doc = _discovery(inputs, deadline)
    return f"{url} (issuer {doc['issuer']})"


def check_endpoints(inputs: Inputs, deadline: Deadline) -> str:
    _, doc = _discovery(inputs, deadline)
    oauth = inputs.site.hub.oauth
    pairs = (
        ("hub.oauth.authorizeUrl", oauth.authorize_url, "authorization_endpoint"),
        ("hub.oauth.tokenUrl", oauth.token_url, "token_endpoint"),
        ("hub.oauth.userdataUrl", oauth.userdata_url, "userinfo_endpoint"),
    )
    for key, mine, theirs in pairs:
        if doc.get(theirs) != mine:
            raise CheckFailed(
                f"{key} is {mine}, the provider's {theirs} is {doc.get(theirs)}",
                _fmt(ADVICE_IDP, inputs),
            )
    return "authorize, token and userinfo URLs match the discovery document"


def check_scopes(inputs: Inputs, deadline: Deadline) -> str:
    _, doc = _discovery(inputs, deadline)
    supported = doc.get("scopes_supported")
    scopes = inputs.site.hub.oauth.scopes
    if not isinstance(supported, list):
        return "the provider lists no scopes_supported; nothing to compare"
    missing = [s for s in scopes if s not in supported]
    if missing:
        raise CheckFailed(
            f"the provider does not offer {', '.join(missing)} (scopes_supported: "
            f"{' '.join(map(str, supported))})",
            _fmt(ADVICE_SCOPES, inputs, scopes=" ".join(scopes)),
        )
    return f"{' '.join(scopes)} all offered"


def _authorize_request(inputs: Inputs, deadline: Deadline) -> str:
    login = _front(inputs, "hub/oauth_login")
    answer = _get(inputs, login, deadline, advice=_fmt(ADVICE_FRONT, inputs))
    location = answer.header("Location")
    if answer.status not in (302, 303) or not location:
        raise CheckFailed(f"{login} answered {answer.status}, not a redirect to the provider", "")
    return urllib.parse.urljoin(login, location)


def check_oauth_login(inputs: Inputs, deadline: Deadline) -> str:
    oauth = inputs.site.hub.oauth
    target = _authorize_request(inputs, deadline)
    base, _, query = target.partition("?")
    if base != oauth.authorize_url:
        raise CheckFailed(
            f"/hub/oauth_login redirects to {base}, not hub.oauth.authorizeUrl "
            f"{oauth.authorize_url}",
            ADVICE_CLIENT,
        )
    params = urllib.parse.parse_qs(query)
    client_id = params.get("client_id", [""])[0]
    if client_id != oauth.client_id:
        raise CheckFailed(
            f"the hub sends client_id {client_id!r}, not {oauth.client_id!r}", ADVICE_CLIENT
        )
    redirect_uri = params.get("redirect_uri", [""])[0]
    if redirect_uri != inputs.callback_url:
        raise CheckFailed(
            f"the hub sends redirect_uri {redirect_uri!r}, not {inputs.callback_url}",
            _fmt(ADVICE_CALLBACK, inputs),
        )
    sent = params.get("scope", [""])[0].split()
    wanted = list(dict.fromkeys([*oauth.scopes, *REQUIRED_SCOPES]))
    missing = [s for s in wanted if s not in sent]
    if missing:
        raise CheckFailed(
            f"the hub requests scopes {' '.join(sent) or '(none)'}: {', '.join(missing)} missing",
            _fmt(ADVICE_SCOPES, inputs, scopes=" ".join(wanted)),
        )
    return f"redirects to {base} with client {client_id}, {redirect_uri}, scopes {' '.join(sent)}"


def check_callback_registered(inputs: Inputs, deadline: Deadline) -> str:
    target = _authorize_request(inputs, deadline)
    answer = _get(inputs, target, deadline, advice=_fmt(ADVICE_IDP, inputs))
    location = answer.header("Location") or ""
    text = answer.text()
    if REDIRECT_REFUSED.search(text) or REDIRECT_REFUSED.search(urllib.parse.unquote(location)):
        raise CheckFailed(
            f"the provider refuses the callback {inputs.callback_url} (answered {answer.status})",
            _fmt(ADVICE_CALLBACK, inputs),
        )
    if location.startswith(inputs.callback_url) and "error=" in location:
        error = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query).get("error", ["?"])
        raise CheckFailed(
            f"the provider answers the hub's request with error {error[0]}", ADVICE_CLIENT
        )
    if answer.status >= 400:
        raise CheckFailed(
            f"the provider answered the authorization request with {answer.status}: "
            f"{_error_text(text)}",
            ADVICE_CLIENT,
        )
    return f"the provider accepts client {inputs.site.hub.oauth.client_id} with this callback"


def _error_text(html: str) -> str:
    plain = re.sub(r"<[^>]+>", " ", html)
    return " ".join(plain.split())[:160]


# -- 4. node mounts ----------------------------------------------------------------
def _known_hosts_line(address: str, port: int, key: str) -> str:
    name = address if port == 22 else f"[{address}]:{port}"
    return f"{name} {key}\n"


# ssh reads the key and known-hosts paths with its own option syntax: whitespace splits a
# list of known-hosts files and `%` starts a token it expands (also in the ProxyCommand).
# Under a TMPDIR holding either, ssh would look for other files than the ones written.
_SSH_SAFE_PATH = re.compile(r"[A-Za-z0-9_./-]+")


def _ssh_workdir() -> tempfile.TemporaryDirectory[str]:
    base = tempfile.gettempdir()
    if not _SSH_SAFE_PATH.fullmatch(base):
        base = "/tmp"  # noqa: S108 - a private mkdtemp directory (0700) under it
    return tempfile.TemporaryDirectory(prefix="jhp-verify-", dir=base)


def ssh_argv(inputs: Inputs, node: NodeHost, workdir: Path) -> list[str]:
    """The ssh command for `node` with the program's connection settings: the same user,
    port and bastion, and only the pinned host keys trusted."""
    nodes = inputs.site.nodes
    port = node.port or nodes.ssh_port
    if node.host_key is None:
        raise CheckSkipped(
            f"{node.name}: nodes.hosts[].hostKey is not set; verify sends no key to an "
            "unpinned host"
        )
    key_file = workdir / "key"
    known = workdir / "known_hosts"
    lines = [_known_hosts_line(node.address, port, node.host_key)]
    common = [
        "-F",
        "none",
        "-i",
        str(key_file),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "ConnectTimeout=5",
        "-o",
        "LogLevel=ERROR",
    ]
    argv = ["ssh", *common, "-p", str(port)]
    bastion = nodes.bastion
    if bastion is not None:
        if bastion.host_key is None:
            raise CheckSkipped(
                "nodes.bastion.hostKey is not set; verify sends no key to an unpinned host"
            )
        lines.append(_known_hosts_line(bastion.host, bastion.port, bastion.host_key))
        jump = [
            "ssh",
            *common,
            "-p",
            str(bastion.port),
            "-W",
            "%h:%p",
            f"{bastion.user or nodes.ssh_user}@{bastion.host}",
        ]
        argv += ["-o", f"ProxyCommand={shlex.join(jump)}"]
    known.write_text("".join(lines))
    return [*argv, f"{nodes.ssh_user}@{node.address}"]


def mount_check(node: NodeHost) -> Check:
    def check(inputs: Inputs, deadline: Deadline) -> str:
        nodes = inputs.site.nodes
        export = inputs.output("share_export_path")
        if export is None:
            raise CheckSkipped(f"needs the share_export_path output ({inputs.outputs_note})")
        if inputs.ssh_key is None:
            raise CheckSkipped(inputs.ssh_key_note)
        settings = MountSettings(
            node_name=node.name,
            export_path=export,
            mount_path=nodes.mount_path,
            ceph_user=inputs.site.share.ceph_user,
            mount_client=nodes.mount_client.value,
            install_packages=False,
            # The check only reads the node; ownership matters to the steps that change it.
            owner="",
        )
        try:
            command = remote_command(settings.check_script(), nodes.ssh_user)
        except ValueError as err:
            raise CheckFailed(f"share_export_path output: {err}") from None
        with _ssh_workdir() as tmp:
            workdir = Path(tmp)
            argv = ssh_argv(inputs, node, workdir)
            key_file = workdir / "key"
            key_file.touch(mode=0o600)
            key_file.write_text(inputs.ssh_key.rstrip("\n") + "\n")
            try:
                proc = subprocess.run(
                    [*argv, command],
                    capture_output=True,
                    text=True,
                    timeout=deadline.left(30.0),
                    check=False,
                    stdin=subprocess.DEVNULL,
                )
            except subprocess.TimeoutExpired:
                raise CheckFailed(
                    f"{node.name}: no answer over SSH in time",
                    _fmt(ADVICE_SSH, inputs, node=node.name, address=node.address),
                ) from None
        findings = [line for line in proc.stdout.splitlines() if line.startswith(("ok", "fail"))]
        if proc.returncode not in (0, 1) or not findings:
            stderr = redact(proc.stderr, inputs.secrets())
            reason = (stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            raise CheckFailed(
                f"{node.name}: SSH to {node.address} failed: {reason[:200]}",
                _fmt(ADVICE_SSH, inputs, node=node.name, address=node.address),
            )
        failures = [line for line in findings if line.startswith("fail")]
        if failures:
            kinds = [line.split(":", 1)[0].split()[1] for line in failures]
            detail = f"{node.name}: " + "; ".join(line.split(": ", 1)[1] for line in failures)
            raise CheckFailed(detail, _mount_advice(inputs, node, kinds))
        return f"{node.name}: {nodes.mount_path} mounted from the share, key 0600, fstab, guard"

    return check


def _mount_advice(inputs: Inputs, node: NodeHost, kinds: list[str]) -> str:
    path = inputs.site.nodes.mount_path
    user = inputs.site.share.ceph_user
    suffix = "secret" if inputs.site.nodes.mount_client.value == "kernel" else "keyring"
    key_file = f"/etc/ceph/jupyterhub-platform-{user}.{suffix}"
    advice = []
    for kind in dict.fromkeys(kinds):
        if kind in ("unmounted", "wrong-share"):
            advice.append(ADVICE_SHARE.format(node=node.name, path=path))
        elif kind == "key-mode":
            advice.append(ADVICE_KEY.format(node=node.name, file=key_file))
        elif kind in ("fstab", "key-missing"):
            advice.append(ADVICE_FSTAB.format(node=node.name, path=path))
        elif kind == "guard":
            advice.append(ADVICE_GUARD.format(node=node.name))
    return "; ".join(advice)


# -- 5. a real session -------------------------------------------------------------
class HubApi:
    """The hub's REST API through the front door, as the health-check service."""

    def __init__(self, inputs: Inputs, token: str) -> None:
        self.inputs = inputs
        self.api = _front(inputs, "hub/api/")
        self.headers = {"Authorization": f"token {token}"}

    def call(
        self,
        method: str,
        path: str,
        deadline: Deadline,
        body: Any = None,
        *,
        url: str = "",
        timeout: float = 10.0,
    ) -> Response:
        data = json.dumps(body).encode() if body is not None else None
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            return self.inputs.client.request(
                method,
                url or self.api + path,
                timeout=deadline.left(timeout),
                headers=headers,
                body=data,
            )
        except ProbeError as err:
            raise CheckFailed(str(err), _fmt(ADVICE_FRONT, self.inputs)) from None

    def expect(self, answer: Response, *codes: int, what: str) -> Response:
        if answer.status not in codes:
            # Redacted before the cut: a server may echo the Authorization header.
            text = " ".join(redact(answer.text(), self.inputs.secrets()).split())[:200]
            raise CheckFailed(f"{what}: {answer.status} {text}", _fmt(ADVICE_SPAWN, self.inputs))
        return answer

    def events(self, user: str, deadline: Deadline) -> Iterator[dict[str, Any]]:
        url = f"{self.api}users/{user}/server/progress"
        try:
            for line in self.inputs.client.stream_lines(
                url, timeout=deadline.left(deadline.seconds), headers=self.headers
            ):
                if line.startswith("data:"):
                    try:
                        event = json.loads(line[5:])
                    except ValueError:
                        continue
                    if isinstance(event, dict):
                        yield event
        except ProbeError as err:
            raise CheckFailed(str(err), _fmt(ADVICE_SPAWN, self.inputs)) from None


def check_session(inputs: Inputs, deadline: Deadline) -> str:
    if inputs.token is None:
        raise CheckSkipped(inputs.token_note)
    api = HubApi(inputs, inputs.token)
    user = HEALTH_CHECK_USER
    found = api.call("GET", f"users/{user}", deadline)
    if found.status == 404:
        api.expect(api.call("POST", f"users/{user}", deadline), 201, what=f"creating {user}")
    else:
        api.expect(found, 200, what=f"reading the user {user}")
        if json.loads(found.body).get("servers", {}).get(""):
            # A server left by an earlier run: stop it, so this run spawns for real.
            _stop(api, user, deadline)
    started = time.monotonic()
    # The hub answers once the server is up, or after its slow_spawn_timeout (10 s).
    answer = api.call("POST", f"users/{user}/server", deadline, timeout=30.0)
    api.expect(answer, 201, 202, what=f"starting {user}'s server")
    spawn_deadline = Deadline(min(inputs.spawn_timeout, deadline.left(deadline.seconds)))
    messages: list[str] = []
    server_url = ""
    for event in api.events(user, spawn_deadline):
        message = str(event.get("message", "")).strip()
        if message:
            messages.append(message)
        if event.get("failed"):
            _stop(api, user, deadline)
            raise _spawn_failure(inputs, messages, "the spawn failed")
        if event.get("ready"):
            server_url = urllib.parse.urljoin(inputs.hub_url, str(event.get("url", "")))
            break
    if not server_url:
        note = _stop(api, user, deadline)
        raise _spawn_failure(
            inputs, messages, f"not ready within {inputs.spawn_timeout:.0f} s{note}"
        )
    spawned = time.monotonic() - started
    try:
        _use_server(api, server_url, deadline)
    finally:
        _stop(api, user, deadline)
    return (
        f"{user}'s server ready in {spawned:.1f} s, a file written and read back in its "
        "home, server stopped"
    )


def _spawn_failure(inputs: Inputs, messages: list[str], what: str) -> CheckFailed:
    last = " | ".join(messages[-3:]) or "no progress events"
    if any(PVC_PENDING.search(m) for m in messages):
        return CheckFailed(f"{what}; a claim cannot bind: {last}", _fmt(ADVICE_PVC, inputs))
    return CheckFailed(f"{what}; last events: {last}", _fmt(ADVICE_SPAWN, inputs))


def _use_server(api: HubApi, server_url: str, deadline: Deadline) -> None:
    url = urllib.parse.urljoin(server_url, f"api/contents/{TEST_FILE}")
    content = f"written by sitectl verify at {time.time():.0f}\n"
    body = {"type": "file", "format": "text", "content": content}
    api.expect(api.call("PUT", "", deadline, body, url=url), 200, 201, what=f"PUT {url}")
    try:
        answer = api.expect(api.call("GET", "", deadline, url=url), 200, what=f"GET {url}")
        if json.loads(answer.body).get("content") != content:
            raise CheckFailed(f"{url} read back something else than was written", "")
        _check_browser_redirect(
            api, urllib.parse.urljoin(server_url, f"files/{TEST_FILE}"), deadline
        )
    finally:
        api.call("DELETE", "", deadline, url=url)


def _check_browser_redirect(api: HubApi, url: str, deadline: Deadline) -> None:
    """A browser without a login is sent to the hub with a state cookie, which the server
    marks Secure only when it knows the browser came over https: the X-Forwarded-Proto
    line at work (the hub itself reads the last proxy's protocol, always http behind the
    chart's proxy, so only a user server shows it)."""
    try:
        answer = api.inputs.client.request("GET", url, timeout=deadline.left())
    except ProbeError as err:
        raise CheckFailed(str(err), _fmt(ADVICE_FRONT, api.inputs)) from None
    location = answer.header("Location") or ""
    if location.startswith("http://"):
        raise CheckFailed(f"{url} redirects to {location}", _fmt(ADVICE_HTTP, api.inputs))
    if answer.status not in (302, 303):
        raise CheckFailed(f"{url} without a login answered {answer.status}, not a redirect", "")
    insecure = [c.split("=", 1)[0] for c in answer.cookies() if not _secure(c)]
    if insecure:
        raise CheckFailed(
            f"{url} sets the cookie {insecure[0]} without Secure: the server believes the "
            "browser came over plain http",
            _fmt(ADVICE_HTTP, api.inputs),
        )


def _stop(api: HubApi, user: str, deadline: Deadline) -> str:
    """Stop the user's server and wait until it is gone; a spawn still pending cannot be
    stopped through the API (the hub ends it at the spawner's start_timeout): say so."""
    answer = api.call("DELETE", f"users/{user}/server", deadline)
    if answer.status == 400 and "pending spawn" in answer.text():
        return "; the spawn stays pending in the hub until its start_timeout"
    api.expect(answer, 202, 204, what=f"stopping {user}'s server")
    while True:
        state = api.call("GET", f"users/{user}", deadline)
        model = json.loads(state.body) if state.status == 200 else {}
        if not model.get("servers", {}).get(""):
            return ""
        time.sleep(0.3)


# -- the groups --------------------------------------------------------------------
GROUP_CHECKS: dict[str, list[tuple[str, Check]]] = {
    "front-door": [
        ("DNS", check_dns),
        ("TLS certificate", check_tls),
        ("/hub/health", check_health),
        ("login page", check_login_page),
        ("https only", check_https_only),
    ],
    "identity-provider": [
        ("discovery", check_discovery),
        ("endpoints", check_endpoints),
        ("scopes offered", check_scopes),
        ("authorization request", check_oauth_login),
        ("callback registered", check_callback_registered),
    ],
    "session": [("spawn, use, stop", check_session)],
}
PER_NODE: dict[str, tuple[str, Callable[[NodeHost], Check]]] = {
    "node-ports": ("NodePort", node_port_check),
    "node-mounts": ("share", mount_check),
}


def expand(group: str, inputs: Inputs) -> Iterator[tuple[str, Check]]:
    if group in PER_NODE:
        label, make = PER_NODE[group]
        for node in inputs.site.nodes.hosts:
            yield f"{label} {node.name}", make(node)
    else:
        yield from GROUP_CHECKS[group]
