"""The login chain: identity provider, hub with its proxy, and HAProxy, all real and local.

    browser --https--> HAProxy 127.0.0.1:443 (site TLS frontend + generated lines)
            --http---> configurable-http-proxy 0.0.0.0:<nodePort> on "nodes" 127.0.0.1-3
            --http---> JupyterHub on 127.0.0.1 (hub.config from the generator)
    browser and hub --https--> oidc-provider on 127.0.0.1 (issuer https://127.0.0.1:<port>)

A chain runs one chart generation: its hub libraries from `.venv-hub/<chart version>`
(JupyterHub 4.0.2 with oauthenticator 16.1.0 for chart 3.1.0, JupyterHub 5.5.0 with
oauthenticator 17.4.0 for 4.4.0) and the configurable-http-proxy that chart runs (4.6.1,
or 5.2.0 installed beside it under the npm alias configurable-http-proxy-5).

`LoginChain` starts the identity provider once per test module, with one client per
site variant, registered from that variant's generated hub.config (client id, secret,
callback URL). `LoginChain.open_site()` then runs one site at a time (a hub and an
HAProxy in front of it), stopping the previous one, because every variant must answer
on the same public URL `https://hub.example.test/`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policy.chart_versions import SUPPORTED_CHARTS, chart_major
from tests.hubenv import hub_bin, hub_python

from .generated import Generated, HaproxySnippet, generate
from .pki import CertificateAuthority, IssuedCert
from .processes import (
    ChainError,
    ManagedProcess,
    ProcessRegistry,
    free_port,
    port_is_free,
    wait_for_port,
    wait_until,
)

HERE = Path(__file__).resolve().parent
IDP_DIR = HERE / "idp"
HUB_CONFIG_FILE = HERE / "jupyterhub_config.py"
# configurable-http-proxy as each chart generation runs it (tests/login/idp/package.json).
CHP_SCRIPTS = {
    3: IDP_DIR / "node_modules" / "configurable-http-proxy" / "bin" / "configurable-http-proxy",
    4: IDP_DIR / "node_modules" / "configurable-http-proxy-5" / "bin" / "configurable-http-proxy",
}

HUB_HOST = "hub.example.test"
# The site's NodePort; another free one in the NodePort range is taken when it is held.
PREFERRED_NODE_PORT = 31090
NODE_PORT_RANGE = range(30000, 32768)
# Three "nodes" on distinct loopback addresses, so HAProxy's round robin is real.
NODES = {"node-1": "127.0.0.1", "node-2": "127.0.0.2", "node-3": "127.0.0.3"}
LOGIN_SERVICE = "Site SSO"
HTTPS_PORT = 443
IDP_HOST = "127.0.0.1"

STARTUP_TIMEOUT = 60.0
# HAProxy checks every 2 s by default; a hub that is up passes within a few seconds.
HEALTH_TIMEOUT = 30.0


@dataclass(frozen=True)
class LoginUser:
    """A user of the test identity provider. `sub` differs from `username` on purpose."""

    username: str
    password: str
    sub: str
    email: str
    groups: tuple[str, ...]

    def as_idp_json(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "password": self.password,
            "sub": self.sub,
            "email": self.email,
            "groups": list(self.groups),
        }


ALICE = LoginUser("alice", "alice-password", "uid-1001", "alice@example.test", ("science",))
BOB = LoginUser("bob", "bob-password", "uid-1002", "bob@example.test", ("other",))
USERS = (ALICE, BOB)


@dataclass(frozen=True)
class SiteSpec:
    """One variant of the site's configuration to log in through."""

    name: str
    base_url: str = "/"
    # None: allow_all; otherwise allowed_groups with claim_groups_key "groups".
    allowed_groups: tuple[str, ...] | None = None
    # The base URL whose callback the provider has registered. None: the site's own,
    # as it should be. Anything else models a provider registration that drifted
    # from the deployed configuration.
    registered_base_url: str | None = None
    # Further hub.oauth settings of the site (chart 4.x keys such as passAccessTokenToServer).
    oauth: dict[str, Any] = field(default_factory=dict)
    # The provider's access-token lifetime for this client, in seconds (default one hour).
    access_token_ttl: int | None = None
    # The scopes in the hub's config; None: the full list a site requests.
    scopes: tuple[str, ...] | None = None
    # The name on HAProxy's certificate (another name models a wrong certificate).
    tls_name: str = HUB_HOST
    # Whether HAProxy's backend keeps the generated X-Forwarded-Proto line.
    forwarded_proto: bool = True
    # Nodes configured at [::1], where nothing listens on the NodePort (the proxy binds
    # IPv4 only): a node whose NodePort does not answer.
    down_nodes: tuple[str, ...] = ()
    # User servers: "none" (the login tests never start one), "local" (a real
    # jupyter-server as a local process, standing in for KubeSpawner's pod), or
    # "pending-claim" (a spawn that never gets ready and reports, as KubeSpawner relays
    # the pod's events, a claim that cannot bind).
    spawner: str = "none"

    @property
    def client_id(self) -> str:
        return f"jupyterhub-{self.name}"

    @property
    def nodes(self) -> dict[str, str]:
        return {n: "::1" if n in self.down_nodes else a for n, a in NODES.items()}


@dataclass
class SiteConfig:
    """What the program generated for one site variant."""

    spec: SiteSpec
    client_secret: str
    node_port: int
    generated: Generated
    registered_redirect_uri: str

    @property
    def hub_config(self) -> dict[str, dict[str, Any]]:
        return self.generated.hub_config

    @property
    def callback_url(self) -> str:
        return str(self.hub_config["GenericOAuthenticator"]["oauth_callback_url"])


@dataclass
class RunningSite:
    """A site whose hub and HAProxy are up."""

    config: SiteConfig
    base_url: str
    node_port: int
    hub_api_url: str
    service_token: str
    haproxy_socket: Path
    hub: ManagedProcess
    haproxy: ManagedProcess
    haproxy_cfg: str
    processes: list[ManagedProcess] = field(default_factory=list)

    @property
    def hub_url(self) -> str:
        """What a person types: the site's public hub URL."""
        return f"https://{HUB_HOST}{self.base_url}"

    @property
    def home_url(self) -> str:
        return f"https://{HUB_HOST}{self.base_url}hub/home"

    def api(self, path: str) -> Any:
        """GET the hub's REST API directly (loopback), as the test's service."""
        # S310: the URL is the hub's loopback API, built here, never a file: URL.
        request = urllib.request.Request(  # noqa: S310
            f"{self.hub_api_url}/{path.lstrip('/')}",
            headers={"Authorization": f"token {self.service_token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.load(response)

    def api_delete(self, path: str) -> None:
        """DELETE on the hub's REST API (stopping a server), as the test's service."""
        request = urllib.request.Request(  # noqa: S310 - the hub's loopback API
            f"{self.hub_api_url}/{path.lstrip('/')}",
            headers={"Authorization": f"token {self.service_token}"},
            method="DELETE",
        )
        with urllib.request.urlopen(request, timeout=60):  # noqa: S310
            pass

    def server_environment(self, username: str) -> dict[str, str]:
        """The environment of the user's running server process (spawned locally)."""
        api_url = f"http://127.0.0.1:{self.hub_api_url.split(':')[2].split('/')[0]}"
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                raw = (proc / "environ").read_bytes()
            except OSError:
                continue
            env = dict(
                item.split("=", 1)
                for item in raw.decode(errors="replace").split("\0")
                if "=" in item
            )
            if env.get("JUPYTERHUB_USER") == username and env.get(
                "JUPYTERHUB_API_URL", ""
            ).startswith(api_url):
                return env
        raise ChainError(f"no server process of {username} for the hub at {api_url}")

    def backend_servers(self) -> list[dict[str, str]]:
        """HAProxy's `show stat` rows for the servers of the hub backend."""
        rows = _haproxy_stats(self.haproxy_socket)
        return [r for r in rows if r["svname"] not in ("FRONTEND", "BACKEND")]

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()


def _haproxy_stats(sock_path: Path) -> list[dict[str, str]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(sock_path))
        sock.sendall(b"show stat\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    text = b"".join(chunks).decode()
    # The header line starts with "# "; the rest is CSV.
    return list(csv.DictReader(io.StringIO(text.removeprefix("# "))))


class LoginChain:
    """Identity provider and the machinery to run site variants behind HAProxy."""

    def __init__(self, workdir: Path, sites: list[SiteSpec], chart_version: str):
        if chart_version not in SUPPORTED_CHARTS:
            raise ChainError(f"chart {chart_version} is not a supported version")
        self.chart_version = chart_version
        self.generation = chart_major(chart_version)
        # Fails (skips) here, before anything starts, when the hub libraries are missing.
        self.hub_python = hub_python(chart_version)
        self.workdir = workdir
        self.registry = ProcessRegistry()
        self.ca = CertificateAuthority(workdir / "pki")
        self.hub_cert: IssuedCert = self.ca.issue("hub", dns_names=[HUB_HOST])
        self._certs = {HUB_HOST: self.hub_cert}
        self.idp_cert: IssuedCert = self.ca.issue(
            "idp", dns_names=["localhost"], ip_addresses=[IDP_HOST]
        )
        self.ssl_context = ssl.create_default_context(cafile=str(self.ca.cert_path))
        self.idp_port = free_port(IDP_HOST)
        self.issuer = f"https://{IDP_HOST}:{self.idp_port}"
        # oidc-provider's default routes; checked against its discovery document below.
        self.authorize_url = f"{self.issuer}/auth"
        self.token_url = f"{self.issuer}/token"
        self.userdata_url = f"{self.issuer}/me"
        self.sites = {spec.name: self._generate(spec) for spec in sites}
        self.current: RunningSite | None = None
        self.idp: ManagedProcess | None = None

    # --- generated configuration -----------------------------------------------------------

    def _render(
        self, spec: SiteSpec, base_url: str, client_secret: str, node_port: int
    ) -> Generated:
        """The program's own output for this variant (run under mocks)."""
        return generate(
            hub_host=HUB_HOST,
            base_url=base_url,
            node_port=node_port,
            nodes=spec.nodes,
            client_id=spec.client_id,
            client_secret=client_secret,
            authorize_url=self.authorize_url,
            token_url=self.token_url,
            userdata_url=self.userdata_url,
            login_service=LOGIN_SERVICE,
            chart_version=self.chart_version,
            allowed_groups=spec.allowed_groups,
            oauth=spec.oauth,
            **({"scopes": spec.scopes} if spec.scopes is not None else {}),
        )

    def _generate(self, spec: SiteSpec) -> SiteConfig:
        client_secret = secrets.token_urlsafe(32)
        node_port = _node_port()
        generated = self._render(spec, spec.base_url, client_secret, node_port)
        # The provider registers the callback URL exactly as the generated config states
        # it (or, for a drifted registration, as it was generated for another base URL).
        registered_from = generated
        if spec.registered_base_url is not None:
            registered_from = self._render(spec, spec.registered_base_url, client_secret, node_port)
        redirect_uri = registered_from.callback_url
        return SiteConfig(spec, client_secret, node_port, generated, redirect_uri)

    # --- identity provider -----------------------------------------------------------------

    def start_idp(self) -> None:
        clients = [
            {
                "client_id": site.spec.client_id,
                "client_secret": site.client_secret,
                "redirect_uris": [site.registered_redirect_uri],
                # oauthenticator with basic_auth False (its default) puts client_id
                # and client_secret into the token request's form body.
                "token_endpoint_auth_method": "client_secret_post",
                "access_token_ttl": site.spec.access_token_ttl,
            }
            for site in self.sites.values()
        ]
        config = {
            "issuer": self.issuer,
            "host": IDP_HOST,
            "port": self.idp_port,
            "tls": {"cert": str(self.idp_cert.cert_path), "key": str(self.idp_cert.key_path)},
            "cookie_keys": [secrets.token_hex(32)],
            "clients": clients,
            "users": [u.as_idp_json() for u in USERS],
        }
        config_path = self.workdir / "idp" / "config.json"
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(json.dumps(config, indent=2))
        config_path.chmod(0o600)
        node = shutil.which("node") or "node"
        self.idp = self.registry.start(
            "oidc-provider",
            [node, str(IDP_DIR / "provider.mjs"), str(config_path)],
            self.workdir / "logs" / "idp.log",
            cwd=IDP_DIR,
        )
        wait_for_port(IDP_HOST, self.idp_port, self.idp, STARTUP_TIMEOUT)
        discovery = self.fetch_json(f"{self.issuer}/.well-known/openid-configuration")
        expected = {
            "issuer": self.issuer,
            "authorization_endpoint": self.authorize_url,
            "token_endpoint": self.token_url,
            "userinfo_endpoint": self.userdata_url,
        }
        wrong = {k: discovery.get(k) for k, v in expected.items() if discovery.get(k) != v}
        if wrong:
            raise ChainError(f"provider endpoints differ from the hub.config's: {wrong}")

    def idp_grants(self) -> list[tuple[str, str]]:
        """(client id, grant type) of every token grant the provider has granted so far."""
        if self.idp is None:
            return []
        grants = []
        for line in self.idp.log_path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "grant.success":
                grants.append((parts[1], parts[2]))
        return grants

    def revoke(self, site: SiteConfig, token: str) -> None:
        """Revoke a token at the provider, as the site's client (RFC 7009)."""
        body = urllib.parse.urlencode(
            {
                "token": token,
                "client_id": site.spec.client_id,
                "client_secret": site.client_secret,
            }
        ).encode()
        request = urllib.request.Request(f"{self.issuer}/token/revocation", data=body)  # noqa: S310
        with urllib.request.urlopen(request, timeout=10, context=self.ssl_context) as response:  # noqa: S310
            if response.status != 200:
                raise ChainError(f"revocation answered {response.status}")

    def fetch_json(self, url: str, data: dict[str, str] | None = None) -> Any:
        """GET (or POST a form to) an https URL of the provider, trusting only the test CA."""
        if not url.startswith(self.issuer + "/"):
            raise ValueError(f"not a URL of the test provider: {url}")
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(url, data=body)  # noqa: S310 - checked just above
        with urllib.request.urlopen(request, timeout=10, context=self.ssl_context) as response:  # noqa: S310
            return json.load(response)

    # --- sites ---------------------------------------------------------------------------------

    def open_site(self, name: str) -> RunningSite:
        """The running site `name`, starting it (and stopping another) when needed."""
        if self.current is not None and self.current.config.spec.name == name:
            return self.current
        if self.current is not None:
            self.current.stop()
            self.current = None
        self.current = self._start_site(self.sites[name])
        return self.current

    def _start_site(self, site: SiteConfig) -> RunningSite:
        spec = site.spec
        base_url = spec.base_url
        sitedir = self.workdir / "sites" / spec.name
        sitedir.mkdir(parents=True, exist_ok=True)
        logs = self.workdir / "logs"

        if not port_is_free(HTTPS_PORT, "127.0.0.1"):
            raise ChainError(f"port {HTTPS_PORT} on 127.0.0.1 is in use: HAProxy cannot bind it")
        node_port = site.node_port
        if not port_is_free(node_port):
            raise ChainError(f"NodePort {node_port} was free when generated and is taken now")
        hub_port = free_port()
        api_port = free_port()
        service_token = secrets.token_hex(32)
        proxy_pid_file = sitedir / "proxy.pid"
        hub_input = {
            "values": {
                "hub": {
                    "baseUrl": base_url,
                    "config": site.hub_config,
                    "extraConfig": site.generated.extra_config,
                }
            },
            "runtime": {
                "db_url": f"sqlite:///{sitedir / 'jupyterhub.sqlite'}",
                "cookie_secret_file": str(sitedir / "jupyterhub_cookie_secret"),
                "crypt_keys": [secrets.token_hex(32)],
                "hub_bind_url": f"http://127.0.0.1:{hub_port}",
                # Like a NodePort, on every address of the "node" (127.0.0.1-3 included).
                "proxy_public_ip": "0.0.0.0",  # noqa: S104
                "node_port": node_port,
                "proxy_command": [
                    shutil.which("node") or "node",
                    str(CHP_SCRIPTS[self.generation]),
                ],
                "singleuser_command": str(hub_bin(self.chart_version, "jupyterhub-singleuser")),
                "home_dir_template": str(sitedir / "home" / "{username}"),
                "proxy_api_url": f"http://127.0.0.1:{api_port}",
                "proxy_pid_file": str(proxy_pid_file),
                "ca_certs": str(self.ca.cert_path),
                "service_token": service_token,
                "services": site.generated.services,
                "load_roles": site.generated.load_roles,
                "spawner": spec.spawner,
                "homes": str(sitedir / "homes"),
            },
        }
        site_file = sitedir / "site.json"
        site_file.write_text(json.dumps(hub_input, indent=2))
        site_file.chmod(0o600)

        processes: list[ManagedProcess] = []
        try:
            hub = self.registry.start(
                f"jupyterhub[{spec.name}]",
                [str(self.hub_python), "-m", "jupyterhub", "-f", str(HUB_CONFIG_FILE)],
                logs / f"hub-{spec.name}.log",
                cwd=sitedir,
                env={**_clean_env(), "LOGIN_TEST_SITE": str(site_file)},
            )
            processes.append(hub)
            wait_for_port("127.0.0.1", hub_port, hub, STARTUP_TIMEOUT)
            wait_for_port("127.0.0.1", node_port, hub, STARTUP_TIMEOUT)
            wait_until("the proxy pid file", proxy_pid_file.exists, hub, STARTUP_TIMEOUT)
            hub.extra_sessions.append(int(proxy_pid_file.read_text().strip()))
            # The hub adds its route to the proxy just after the proxy listens; HAProxy's
            # first checks would otherwise see 404s and delay the site by several checks.
            wait_until(
                "the hub's health page through the proxy",
                lambda: _http_status(f"http://127.0.0.1:{node_port}{base_url}hub/health") == 200,
                hub,
                STARTUP_TIMEOUT,
            )

            snippet = site.generated.haproxy
            haproxy_socket = sitedir / "haproxy.sock"
            if not spec.forwarded_proto:
                snippet = HaproxySnippet(
                    snippet.frontend,
                    "".join(
                        line
                        for line in snippet.backend.splitlines(keepends=True)
                        if "X-Forwarded-Proto" not in line
                    ),
                )
            haproxy_cfg = _haproxy_config(
                snippet, self._cert(spec.tls_name).bundle_path, haproxy_socket
            )
            cfg_path = sitedir / "haproxy.cfg"
            cfg_path.write_text(haproxy_cfg)
            check = subprocess.run(
                ["haproxy", "-c", "-f", str(cfg_path)],
                capture_output=True,
                text=True,
                check=False,
            )
            if check.returncode != 0:
                raise ChainError(
                    f"haproxy rejects the config:\n{check.stdout}{check.stderr}\n{haproxy_cfg}"
                )
            haproxy = self.registry.start(
                f"haproxy[{spec.name}]",
                ["haproxy", "-db", "-f", str(cfg_path)],
                logs / f"haproxy-{spec.name}.log",
                cwd=sitedir,
            )
            processes.append(haproxy)
            wait_for_port("127.0.0.1", HTTPS_PORT, haproxy, STARTUP_TIMEOUT)
            running = RunningSite(
                config=site,
                base_url=base_url,
                node_port=node_port,
                hub_api_url=f"http://127.0.0.1:{hub_port}{base_url}hub/api",
                service_token=service_token,
                haproxy_socket=haproxy_socket,
                hub=hub,
                haproxy=haproxy,
                haproxy_cfg=haproxy_cfg,
                processes=processes,
            )
            # The generated health check must find the hub on every node before a browser
            # comes: this is the check the site's HAProxy relies on in production.
            wait_until(
                "HAProxy health checks to pass on every node",
                lambda: _servers_as_expected(running),
                haproxy,
                HEALTH_TIMEOUT,
            )
        except BaseException:
            for proc in reversed(processes):
                proc.stop()
            raise
        return running

    def _cert(self, name: str) -> IssuedCert:
        if name not in self._certs:
            self._certs[name] = self.ca.issue(name.split(".", maxsplit=1)[0], dns_names=[name])
        return self._certs[name]

    def close(self) -> list[str]:
        """Stop everything; return what was still running afterwards (should be nothing)."""
        if self.current is not None:
            self.current.stop()
            self.current = None
        self.registry.stop_all()
        leftovers = self.registry.leftovers()
        if leftovers:
            # Something ignored SIGTERM and outlived SIGKILL of its group: kill what pgrep
            # still finds in our sessions, and report it all the same.
            self.registry.kill_leftovers()
        return leftovers


def _http_status(url: str) -> int:
    """Status of a plain-http GET to one of our loopback servers (errors included)."""
    request = urllib.request.Request(url, headers={"Host": HUB_HOST})  # noqa: S310 - loopback http
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _servers_as_expected(site: RunningSite) -> bool:
    """Every node's server UP after a passed check, except the nodes meant to be down."""
    down = site.config.spec.down_nodes
    servers = site.backend_servers()
    return len(servers) == len(NODES) and all(
        (s["status"] == "UP" and s["check_status"] == "L7OK")
        if s["svname"] not in down
        else s["status"] == "DOWN"
        for s in servers
    )


def _clean_env() -> dict[str, str]:
    """The test's environment without settings that would change how the hub behaves."""
    drop_prefixes = ("JUPYTERHUB_", "JPY_", "CONFIGPROXY_", "OAUTH", "SSL_CERT_", "LOGIN_TEST_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}


def _haproxy_config(snippet: HaproxySnippet, cert_bundle: Path, stats_socket: Path) -> str:
    """The site's HAProxy: a minimal wrapper around the generated frontend and backend."""
    return (
        "global\n"
        "    log stdout format raw local0 info\n"
        f"    stats socket {stats_socket} mode 600 level admin\n"
        "    maxconn 256\n"
        "\n"
        "defaults\n"
        "    mode http\n"
        "    log global\n"
        "    option httplog\n"
        "    timeout connect 5s\n"
        "    timeout client 30s\n"
        "    timeout server 30s\n"
        "    timeout check 5s\n"
        "\n"
        "frontend site_tls\n"
        f"    bind 127.0.0.1:{HTTPS_PORT} ssl crt {cert_bundle}\n"
        "    # Lines generated by the program for the hub host:\n"
        f"{snippet.frontend.rstrip()}\n"
        "\n"
        "# Backend generated by the program:\n"
        f"{snippet.backend.rstrip()}\n"
    )


def _node_port() -> int:
    """The site's NodePort (the program accepts only 30000-32767): 31090 when free."""
    for port in (PREFERRED_NODE_PORT, *NODE_PORT_RANGE):
        if port_is_free(port):
            return port
    raise ChainError("no free port in the NodePort range 30000-32767")
