"""The configuration the program generates for a login test site: the seam of these tests.

The login tests configure the hub and HAProxy with nothing but what the program itself
produces. `generate()` describes the test site as the espsrc stack with its own host,
base URL, NodePort, nodes and identity provider, runs the real program under mocks, and
returns the chart's `hub.config` from the Helm release it registered and the two parts
of its `haproxy_config` output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sitectl.mockrun import reveal
from tests.sites import DELETE, SSH_KEY, run, site

SCOPES = ("openid", "profile", "email", "offline_access")
BACKEND_MARK = "# 2. A backend of its own:\n"


@dataclass(frozen=True)
class HaproxySnippet:
    frontend: str
    """Lines for the site's TLS frontend."""
    backend: str
    """A complete backend section."""


@dataclass(frozen=True)
class Generated:
    hub_config: dict[str, dict[str, Any]]
    extra_config: dict[str, str]
    """`hub.extraConfig`: Python the chart's hub runs after hub.config."""
    haproxy: HaproxySnippet
    hub_url: str
    callback_url: str
    services: dict[str, dict[str, Any]]
    """The chart's `hub.services` (the health check's, with its token)."""
    load_roles: dict[str, dict[str, Any]]
    """The chart's `hub.loadRoles`."""
    settings: dict[str, Any]
    """The stack's settings this was generated from (for a stack file)."""
    outputs: dict[str, Any]
    """The stack outputs, secrets revealed, as `pulumi stack output --show-secrets`."""


def generate(
    *,
    hub_host: str,
    base_url: str,
    node_port: int,
    nodes: Mapping[str, str],
    client_id: str,
    client_secret: str,
    authorize_url: str,
    token_url: str,
    userdata_url: str,
    login_service: str,
    chart_version: str,
    allowed_groups: Sequence[str] | None = None,
    oauth: Mapping[str, Any] | None = None,
    scopes: Sequence[str] = SCOPES,
) -> Generated:
    """Run the program for a site like espsrc but pointing at the test's chain.

    `allowed_groups=None` keeps espsrc's `allowAll`; a list admits only those groups,
    read from the `groups` claim. `oauth` sets further `hub.oauth` keys.
    """
    changes: dict[str, Any] = {
        "hub.chartVersion": chart_version,
        "site.hubHost": hub_host,
        "hub.baseUrl": base_url,
        "hub.nodePort": node_port,
        "hub.logo": DELETE,
        "nodes.hosts": [{"name": name, "address": addr} for name, addr in nodes.items()],
        "hub.oauth.loginService": login_service,
        "hub.oauth.clientId": client_id,
        "hub.oauth.authorizeUrl": authorize_url,
        "hub.oauth.tokenUrl": token_url,
        "hub.oauth.userdataUrl": userdata_url,
        "hub.oauth.scopes": list(scopes),
        # oidc-provider issues a refresh token for offline_access only with consent.
        "hub.oauth.extraAuthorizeParams": {"prompt": "consent"},
    }
    if allowed_groups is not None:
        changes.update(
            {
                # As the program's refusal of allowAll with groups says: remove allowAll.
                "hub.oauth.allowAll": DELETE,
                "hub.oauth.claimGroupsKey": "groups",
                "hub.oauth.allowedGroups": list(allowed_groups),
            }
        )
    for key, value in (oauth or {}).items():
        changes[f"hub.oauth.{key}"] = value
    settings = site(**changes)
    result = run(settings, {"oauthClientSecret": client_secret, "sshPrivateKey": SSH_KEY}).ok()
    values = reveal(result.one("kubernetes:helm.sh/v3:Release").inputs["values"])
    text = result.outputs["haproxy_config"]
    frontend, mark, backend = text.partition(BACKEND_MARK)
    if not mark:
        raise ValueError("haproxy_config has no backend part")
    return Generated(
        hub_config=values["hub"]["config"],
        extra_config=dict(values["hub"].get("extraConfig") or {}),
        haproxy=HaproxySnippet(frontend=frontend, backend=backend),
        hub_url=str(result.outputs["hub_url"]),
        callback_url=str(result.outputs["oauth_callback_url"]),
        services=values["hub"].get("services", {}),
        load_roles=values["hub"].get("loadRoles", {}),
        settings=settings,
        outputs={k: reveal(v) for k, v in result.outputs.items()},
    )
