"""Helm values for the jupyterhub chart, built from the site config.

Pure functions: given the typed settings (and Outputs for what only exists at deploy time,
such as secrets and the storage class name), return the values the chart receives. Kept
apart from the component so tests, the plan and the policies can read one definition.

Where the runbook's values.yaml is wrong or fragile this builds the corrected form:
`username_claim` instead of the deprecated `username_key`, a `userdata_token_method` that
oauthenticator understands, a callback URL derived from the hub host, pinned images, and
the logo shipped from the repository instead of downloaded when the hub starts.

The authenticator's settings depend on the chart's generation. Chart 3.x runs
oauthenticator 16: groups come from a userinfo claim (`claim_groups_key`), no PKCE, no
token refresh. Chart 4.x runs oauthenticator 17, which refuses to start with
`allowed_groups`/`admin_groups` unless `manage_groups` is on, reads groups from a path
inside the auth state (`auth_state_groups_key`: the claim `groups` is
`oauth_user.groups`; a bare `groups` finds nothing and refuses every user), sends PKCE by
default, and can exchange the stored refresh token (`refresh_user`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from components.config import (
    DEFAULT_ACCESS_TOKEN_ENV,
    DEFAULT_AUTH_REFRESH_AGE,
    PROJECT_DIR,
    HubSettings,
)

# Where the hub container sees the logo; `hub.extraFiles` mounts it there from the hub Secret.
LOGO_MOUNT_PATH = "/usr/local/etc/jupyterhub/site-logo.png"


# `sitectl verify --spawn` logs in as this service and runs a session of this user.
HEALTH_CHECK_SERVICE = "platform-health-check"
HEALTH_CHECK_USER = "platform-health-check"


def health_check_scopes(user: str = HEALTH_CHECK_USER) -> list[str]:
    """What the health check needs, on its own user only: create it (admin:users), start
    and stop its server (servers), follow the spawn and read its state (read:servers,
    read:users), and reach the server's contents API (access:servers)."""
    return [
        f"{scope}!user={user}"
        for scope in ("admin:users", "servers", "read:servers", "read:users", "access:servers")
    ]


def deep_merge(base: Any, over: Any) -> Any:
    """Helm's merge of values: maps merge key by key; lists and scalars replace."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return over


def hub_config(
    hub: HubSettings,
    callback_url: str,
    client_secret: pulumi.Input[str] | None,
) -> dict[str, Any]:
    """The chart's `hub.config`: traitlets sections the hub loads as `c[section].update(...)`.

    With `client_secret=None` no secret is written; the hub then reads OAUTH_CLIENT_SECRET
    from its environment (the vault mode).
    """
    oauth = hub.oauth
    generic: dict[str, Any] = {
        "login_service": oauth.login_service,
        "client_id": oauth.client_id,
        "oauth_callback_url": callback_url,
        "authorize_url": oauth.authorize_url,
        "token_url": oauth.token_url,
        "userdata_url": oauth.userdata_url,
        "scope": list(oauth.scopes),
        "username_claim": oauth.username_claim,
        "userdata_token_method": oauth.userdata_token_method.value,
    }
    if client_secret is not None:
        generic["client_secret"] = client_secret
    if oauth.userdata_params:
        generic["userdata_params"] = dict(oauth.userdata_params)
    if oauth.extra_authorize_params:
        generic["extra_authorize_params"] = dict(oauth.extra_authorize_params)
    authenticator: dict[str, Any] = {"enable_auth_state": oauth.enable_auth_state}
    if hub.chart_generation >= 4:
        if oauth.claim_groups_key:
            # userinfo lands in the auth state under oauth_user.
            generic["auth_state_groups_key"] = f"oauth_user.{oauth.claim_groups_key}"
        if oauth.allowed_groups or oauth.admin_groups:
            authenticator["manage_groups"] = True
        generic["enable_pkce"] = oauth.pkce is not False
        if oauth.refreshes_tokens:
            # Before a spawn, and on a request once the token is older than this, the hub
            # checks the access token and exchanges the refresh token when it fails; a
            # refused refresh sends the user to log in again. (oauthenticator 17 already
            # defaults refresh_pre_spawn to true with auth state: written so the values say
            # what the hub does.)
            authenticator["refresh_pre_spawn"] = True
            authenticator["auth_refresh_age"] = (
                oauth.auth_refresh_age_seconds or DEFAULT_AUTH_REFRESH_AGE
            )
    elif oauth.claim_groups_key:
        generic["claim_groups_key"] = oauth.claim_groups_key
    if oauth.allowed_groups:
        generic["allowed_groups"] = list(oauth.allowed_groups)
    if oauth.admin_groups:
        generic["admin_groups"] = list(oauth.admin_groups)
    if oauth.allow_all:
        generic["allow_all"] = True

    jupyterhub: dict[str, Any] = {"authenticator_class": "generic-oauth"}
    if hub.logo:
        jupyterhub["logo_file"] = LOGO_MOUNT_PATH
    return {
        "JupyterHub": jupyterhub,
        "Authenticator": authenticator,
        "GenericOAuthenticator": generic,
    }


# The name of the program's entry in `hub.extraConfig`: the chart runs the entries in
# name order after `hub.config`, and a site's own entries (through hub.extraValues) keep
# theirs.
ACCESS_TOKEN_CONFIG_NAME = "jupyterhub-platform-access-token"

# Runs in the hub (chart 4.x, JupyterHub 5). The spawner calls the hook with the auth
# state current at spawn time: with refresh_pre_spawn the hub has refreshed it just
# before. The token never appears in the Helm values; only the variable's name does.
_ACCESS_TOKEN_HOOK = """\
# Written by jupyterhub-platform (hub.oauth.passAccessTokenToServer): each spawn gives the
# user's server the access token of the user's auth state at spawn time.
def _jupyterhub_platform_access_token(spawner, auth_state):
    # A new dict, never the configured one shared with other spawners' settings.
    environment = dict(spawner.environment)
    environment.pop({env!r}, None)
    token = (auth_state or {{}}).get("access_token")
    if token:
        environment[{env!r}] = token
    spawner.environment = environment


c.Spawner.auth_state_hook = _jupyterhub_platform_access_token
"""


# The name of the entry that lets the health-check user's server start on chart 4.x.
HEALTH_CHECK_CONFIG_NAME = "jupyterhub-platform-health-check-login"

# oauthenticator 17 (chart 4.x) refreshes a user's auth state before each spawn and refuses
# the spawn ("auth has expired") when there is none to refresh. The health-check user
# (`make verify --spawn`) is created by its service and never logs in through the
# identity provider, so it has none: for that user alone, and only while it has no auth
# state, the refresh reports the login as current. Anyone else is refreshed as before.
_HEALTH_CHECK_REFRESH_HOOK = """\
# Written by jupyterhub-platform: the health-check user never logs in through the identity
# provider, so it has no auth state to refresh before its server starts.
def _jupyterhub_platform_health_check_refresh(authenticator, user, auth_state):
    if user.name == {user!r} and not auth_state:
        return True
    return None


c.GenericOAuthenticator.refresh_user_hook = _jupyterhub_platform_health_check_refresh
"""


def health_check_refresh_hook(hub: HubSettings) -> str | None:
    """The `hub.extraConfig` entry that keeps the health-check user's spawns working on
    chart 4.x, or None where the hub does not refresh before a spawn."""
    if hub.chart_generation < 4 or not hub.oauth.enable_auth_state:
        return None
    return _HEALTH_CHECK_REFRESH_HOOK.format(user=HEALTH_CHECK_USER)


def access_token_hook(hub: HubSettings) -> str | None:
    """The `hub.extraConfig` entry that passes the access token to servers, or None."""
    oauth = hub.oauth
    if not oauth.pass_access_token_to_server:
        return None
    return _ACCESS_TOKEN_HOOK.format(env=oauth.access_token_env_var or DEFAULT_ACCESS_TOKEN_ENV)


def profile_list(hub: HubSettings) -> list[dict[str, Any]]:
    """KubeSpawner's `profile_list`, as the chart's `singleuser.profileList` carries it."""
    profiles = []
    for profile in hub.profiles:
        entry: dict[str, Any] = {"display_name": profile.display_name}
        if profile.description:
            entry["description"] = profile.description
        if profile.default:
            entry["default"] = True
        override: dict[str, Any] = {}
        if profile.image:
            override["image"] = profile.image
        if profile.cpu:
            override["cpu_limit"] = profile.cpu.limit
            override["cpu_guarantee"] = profile.cpu.guarantee
        if profile.memory:
            override["mem_limit"] = profile.memory.limit
            override["mem_guarantee"] = profile.memory.guarantee
        if override:
            entry["kubespawner_override"] = override
        profiles.append(entry)
    return profiles


def logo_file(hub: HubSettings, project_dir: Path = PROJECT_DIR) -> dict[str, Any] | None:
    if not hub.logo:
        return None
    data = (project_dir / hub.logo).read_bytes()
    return {
        "mountPath": LOGO_MOUNT_PATH,
        "binaryData": base64.b64encode(data).decode("ascii"),
    }


@dataclass(frozen=True)
class SecretKeyRef:
    """A key of a Kubernetes Secret in the hub's namespace."""

    name: str
    key: str


# oauthenticator reads this variable when hub.config has no client_secret.
CLIENT_SECRET_ENV = "OAUTH_CLIENT_SECRET"
# Where chart_values puts secrets: whatever stands there is redacted in anything shown.
SECRET_VALUE_PATHS = (
    ("proxy", "secretToken"),
    ("hub", "config", "GenericOAuthenticator", "client_secret"),
)


def chart_values(
    hub: HubSettings,
    *,
    callback_url: str,
    storage_class: pulumi.Input[str],
    client_secret: pulumi.Input[str] | SecretKeyRef,
    proxy_token: pulumi.Input[str],
    health_check_token: pulumi.Input[str],
    project_dir: Path = PROJECT_DIR,
) -> dict[str, Any]:
    """Every value the program sets; the chart's defaults supply the rest.

    `client_secret` is the secret itself, or a reference to the Kubernetes Secret the hub
    reads it from: then it reaches the hub as an environment variable and appears neither
    in these values nor in Pulumi's state.
    """
    in_config = None if isinstance(client_secret, SecretKeyRef) else client_secret
    singleuser = hub.singleuser
    values: dict[str, Any] = {
        "proxy": {
            "secretToken": proxy_token,
            "service": {"type": "NodePort", "nodePorts": {"http": hub.node_port}},
        },
        "hub": {
            "baseUrl": hub.base_url,
            "config": hub_config(hub, callback_url, in_config),
            "db": {"pvc": {"storageClassName": hub.db_storage_class or storage_class}},
            "services": {HEALTH_CHECK_SERVICE: {"apiToken": health_check_token}},
            "loadRoles": {
                HEALTH_CHECK_SERVICE: {
                    "description": "sitectl verify --spawn: start, use and stop the "
                    f"server of the user {HEALTH_CHECK_USER}, and nothing else",
                    "scopes": health_check_scopes(),
                    "services": [HEALTH_CHECK_SERVICE],
                }
            },
        },
        "singleuser": {
            "defaultUrl": singleuser.default_url,
            "image": {"name": singleuser.image.name, "tag": singleuser.image.tag},
            "cpu": {"limit": singleuser.cpu.limit, "guarantee": singleuser.cpu.guarantee},
            "memory": {
                "limit": singleuser.memory.limit,
                "guarantee": singleuser.memory.guarantee,
            },
            "storage": {
                "type": "dynamic",
                "capacity": singleuser.storage.capacity,
                "dynamic": {"storageClass": storage_class},
            },
        },
    }
    if isinstance(client_secret, SecretKeyRef):
        values["hub"]["extraEnv"] = {
            CLIENT_SECRET_ENV: {
                "valueFrom": {
                    "secretKeyRef": {"name": client_secret.name, "key": client_secret.key}
                }
            }
        }
    if singleuser.extra_env:
        values["singleuser"]["extraEnv"] = dict(singleuser.extra_env)
    if hub.profiles:
        values["singleuser"]["profileList"] = profile_list(hub)
    extra_config = {
        name: code
        for name, code in (
            (ACCESS_TOKEN_CONFIG_NAME, access_token_hook(hub)),
            (HEALTH_CHECK_CONFIG_NAME, health_check_refresh_hook(hub)),
        )
        if code
    }
    if extra_config:
        values["hub"]["extraConfig"] = extra_config
    logo = logo_file(hub, project_dir)
    if logo:
        values["hub"]["extraFiles"] = {"site-logo": logo}
    return values


def without_blobs(values: Any) -> Any:
    """Values with file contents (the logo) left out: a summary, not a copy."""
    if isinstance(values, dict):
        return {
            k: "[omitted]" if k in ("binaryData", "stringData") else without_blobs(v)
            for k, v in values.items()
        }
    if isinstance(values, list):
        return [without_blobs(v) for v in values]
    return values
