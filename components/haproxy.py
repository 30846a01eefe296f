"""The lines the site's HAProxy needs to front this hub.

The site's HAProxy terminates TLS and balances over every node's NodePort. Its frontend
is shared with the site's other services, so the program does not manage it: it renders
the lines to add (an ACL and a `use_backend` for the TLS frontend, and a backend) as the
`haproxy_config` stack output, for the operator to paste and check with `haproxy -c`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from components.config import SiteConfig


@dataclass(frozen=True)
class HAProxySnippet:
    frontend: str
    """Lines for the site's TLS frontend (indented, to go inside `frontend ...`)."""
    backend: str
    """A complete `backend` section."""

    def text(self, site: str, hub_url: str) -> str:
        return (
            f"# jupyterhub-platform, stack {site}: HAProxy lines for {hub_url}\n"
            "# 1. Inside the frontend that terminates TLS for the hub's host name:\n"
            f"{self.frontend}"
            "# 2. A backend of its own:\n"
            f"{self.backend}"
        )


def _server_address(address: str, port: int) -> str:
    try:
        if ipaddress.ip_address(address).version == 6:
            return f"[{address}]:{port}"
    except ValueError:
        pass
    return f"{address}:{port}"


def render_haproxy(site: SiteConfig) -> HAProxySnippet:
    hub = site.hub
    host = site.site.hub_host
    name = f"jupyterhub_{site.site.name}".replace("-", "_")
    acl = f"host_{name}"
    frontend = f"    acl {acl} hdr(host) -i {host}\n    use_backend {name} if {acl}\n"
    lines = [
        f"backend {name}",
        "    mode http",
        "    balance roundrobin",
        # TLS ends at HAProxy: without this header the hub builds http:// URLs, and the
        # OAuth redirect no longer matches the registered https:// callback.
        "    http-request set-header X-Forwarded-Proto https",
        "    option forwardfor",
        # Notebook kernels talk over long-lived websockets; idle ones must survive.
        "    timeout tunnel 1h",
        # The health check goes through the chart's proxy on the NodePort, as users do.
        "    option httpchk",
        f"    http-check send meth GET uri {hub.base_url}hub/health ver HTTP/1.1 hdr Host {host}",
        "    http-check expect status 200",
    ]
    lines += [
        f"    server {node.name} {_server_address(node.address, hub.node_port)} check"
        for node in site.nodes.hosts
    ]
    return HAProxySnippet(frontend=frontend, backend="\n".join(lines) + "\n")


def haproxy_config(site: SiteConfig) -> str:
    """The `haproxy_config` stack output: both parts, with where each goes."""
    return render_haproxy(site).text(site.site.name, site.hub_url)
