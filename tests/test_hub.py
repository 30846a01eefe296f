"""The JupyterHub component: chart values checked by the chart's schema and the hub's libraries."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from components.jupyterhub import HUB_URL_ANNOTATION
from sitectl.mockrun import ProgramRun, Secret, reveal
from tests.hubload import load_authenticator, load_spawner
from tests.sites import (
    OAUTH_SECRET,
    ROOT,
    chart_defaults,
    chart_schema,
    deep_merge,
    run,
    site,
)

RELEASE = "kubernetes:helm.sh/v3:Release"

VARIANTS: dict[str, dict[str, Any]] = {
    "espsrc": {},
    "no-profiles": {"hub.profiles": []},
    "groups": {
        "hub.oauth.allowAll": False,
        "hub.oauth.claimGroupsKey": "groups",
        "hub.oauth.allowedGroups": ["ska-science"],
        "hub.oauth.adminGroups": ["ska-admins"],
    },
    "base-url": {"hub.baseUrl": "/jhub/"},
    "no-logo-prompt-consent": {
        "hub.logo": None,
        "hub.oauth.extraAuthorizeParams": {"prompt": "consent"},
        "hub.oauth.userdataParams": {},
    },
}


def _site(variant: str) -> dict[str, Any]:
    changes = dict(VARIANTS[variant])
    settings = site(**{k: v for k, v in changes.items() if v is not None})
    for key, value in changes.items():
        if value is None:
            section, _, name = key.partition(".")
            settings[section].pop(name)
    return settings


def values_of(result: ProgramRun) -> dict[str, Any]:
    return reveal(result.one(RELEASE).inputs["values"])


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest) -> tuple[str, ProgramRun]:
    return request.param, run(_site(request.param)).ok()


def test_values_pass_the_chart_schema(variant: tuple[str, ProgramRun]) -> None:
    name, result = variant
    merged = deep_merge(chart_defaults(), values_of(result))
    validator = jsonschema.Draft7Validator(chart_schema())
    errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(merged)]
    assert errors == [], f"{name}: {errors}"


def test_schema_check_can_fail() -> None:
    """The schema check above is not vacuous: a misspelt chart key is rejected."""
    values = values_of(run().ok())
    values["singleuser"]["storage"]["dynamic"]["storageClassName"] = "oops"
    merged = deep_merge(chart_defaults(), values)
    assert list(jsonschema.Draft7Validator(chart_schema()).iter_errors(merged))


def test_hub_config_loads_cleanly_into_the_hubs_libraries(variant: tuple[str, ProgramRun]) -> None:
    from oauthenticator.generic import GenericOAuthenticator

    name, result = variant
    values = values_of(result)
    authenticator, logged = load_authenticator(values)
    assert logged == [], f"{name}: {logged}"
    assert type(authenticator) is GenericOAuthenticator, name
    oauth = _site(name)["hub"]["oauth"]
    assert authenticator.username_claim == "preferred_username"
    assert authenticator.userdata_token_method == "header"
    assert authenticator.scope == oauth["scopes"]
    assert authenticator.client_secret == OAUTH_SECRET
    assert authenticator.oauth_callback_url == result.outputs["oauth_callback_url"]
    assert authenticator.enable_auth_state is True
    if name == "groups":
        assert authenticator.allow_all is False
        assert authenticator.allowed_groups == {"ska-science"}
        assert authenticator.admin_groups == {"ska-admins"}
        assert authenticator.claim_groups_key == "groups"
    else:
        assert authenticator.allow_all is True


def test_runbook_hub_config_would_warn() -> None:
    """The same loader catches the runbook's deprecated `username_key`."""
    values = values_of(run().ok())
    generic = values["hub"]["config"]["GenericOAuthenticator"]
    generic["username_key"] = generic.pop("username_claim")
    _, logged = load_authenticator(values)
    assert any("username_key is deprecated" in line for line in logged), logged


def test_kubespawner_accepts_the_profile_list(
    variant: tuple[str, ProgramRun], tmp_path: Path
) -> None:
    name, result = variant
    values = values_of(result)
    spawner, logged = load_spawner(values, tmp_path)
    assert logged == [], f"{name}: {logged}"
    profiles = spawner._get_initialized_profile_list(spawner.profile_list)
    expected = {
        p["displayName"]: p.get("image", "quay.io/jupyter/minimal-notebook:2025-11-10")
        for p in _site(name)["hub"].get("profiles", [])
    }
    assert [p["display_name"] for p in profiles] == list(expected)
    form = spawner._render_options_form(profiles) if profiles else ""
    for profile in profiles:
        assert profile["display_name"] in form
        fresh, _ = load_spawner(values, tmp_path)
        fresh._load_profile(profile["slug"], profiles)
        assert fresh.image == expected[profile["display_name"]], profile["slug"]
    assert spawner.default_url == "/lab"


def test_callback_and_hub_url_share_host_and_base_url() -> None:
    for base in ("/", "/jhub/"):
        result = run(site(**{"hub.baseUrl": base})).ok()
        hub_url = f"https://notebook.espsrc.iaa.csic.es{base}"
        assert result.outputs["hub_url"] == hub_url
        assert result.outputs["oauth_callback_url"] == f"{hub_url}hub/oauth_callback"
        generic = values_of(result)["hub"]["config"]["GenericOAuthenticator"]
        assert generic["oauth_callback_url"] == f"{hub_url}hub/oauth_callback"
        namespace = result.named("hub-namespace")
        assert namespace.inputs["metadata"]["annotations"] == {HUB_URL_ANNOTATION: hub_url}


def test_outputs() -> None:
    result = run().ok()
    expected = {
        "hub_url": "https://notebook.espsrc.iaa.csic.es/",
        "oauth_callback_url": "https://notebook.espsrc.iaa.csic.es/hub/oauth_callback",
        "namespace": "jhub-srcnet",
        "release_status": "deployed",
    }
    assert {k: result.outputs[k] for k in expected} == expected


def test_secrets_stay_secret() -> None:
    result = run().ok()
    release = result.one(RELEASE)
    values = release.inputs["values"]
    assert isinstance(values, Secret), "the Helm values input must be secret as a whole"
    token = result.named("hub-proxy-token")
    assert isinstance(token.outputs["hex"], Secret), "proxy token must be a secret output"
    revealed = reveal(values)
    assert revealed["proxy"]["secretToken"] == reveal(token.outputs["hex"])
    health = result.named("hub-health-check-token")
    assert isinstance(health.outputs["hex"], Secret), "health check token must be secret"
    service = revealed["hub"]["services"]["platform-health-check"]
    assert service == {"apiToken": reveal(health.outputs["hex"])}
    exported = result.outputs["health_check_token"]
    assert isinstance(exported, Secret), "the health_check_token output must be secret"
    assert reveal(exported) == reveal(health.outputs["hex"])
    settings = json.loads(result.named("hub-settings").inputs["data"]["values.json"])
    assert settings["hub"]["services"]["platform-health-check"]["apiToken"] == "[secret]"
    assert revealed["hub"]["config"]["GenericOAuthenticator"]["client_secret"] == OAUTH_SECRET
    for res in result.resources:
        if res is release:
            continue
        assert OAUTH_SECRET not in repr(reveal(res.inputs)), res.name


def test_health_check_role_is_limited_to_its_own_user() -> None:
    """The token verify uses can create, start, use and stop one user's server, and
    nothing else: every scope is filtered to that user."""
    role = values_of(run().ok())["hub"]["loadRoles"]["platform-health-check"]
    assert role["services"] == ["platform-health-check"]
    assert sorted(role["scopes"]) == sorted(
        f"{scope}!user=platform-health-check"
        for scope in ("admin:users", "servers", "read:servers", "read:users", "access:servers")
    )


def test_release_settings() -> None:
    result = run().ok()
    release = result.one(RELEASE)
    namespace = result.named("hub-namespace")
    assert release.inputs["chart"] == "jupyterhub"
    assert release.inputs["version"] == "3.1.0"
    assert release.inputs["repositoryOpts"] == {"repo": "https://hub.jupyter.org/helm-chart/"}
    assert release.inputs["name"] == "jhub-release-gitops"
    assert release.inputs["namespace"] == "jhub-srcnet"
    assert release.inputs["createNamespace"] is False
    assert release.inputs["cleanupOnFail"] is True
    assert release.inputs["timeout"] >= 900, "the image pre-puller needs time"
    assert namespace.urn in result.direct_dependencies(release)
    assert namespace.inputs["metadata"]["name"] == "jhub-srcnet"


def test_values_cover_the_runbook() -> None:
    values = values_of(run().ok())
    assert values["proxy"]["service"] == {"type": "NodePort", "nodePorts": {"http": 31090}}
    singleuser = values["singleuser"]
    assert singleuser["cpu"] == {"limit": 0.5, "guarantee": 0.5}
    assert singleuser["memory"] == {"limit": "1G", "guarantee": "1G"}
    assert singleuser["storage"]["capacity"] == "1Gi"
    assert singleuser["image"] == {"name": "quay.io/jupyter/minimal-notebook", "tag": "2025-11-10"}
    assert singleuser["defaultUrl"] == "/lab"
    assert singleuser["extraEnv"] == {
        "JUPYTERHUB_SINGLEUSER_APP": "jupyter_server.serverapp.ServerApp"
    }
    generic = values["hub"]["config"]["GenericOAuthenticator"]
    assert generic["userdata_params"] == {"state": "state"}
    assert "username_key" not in generic
    assert values["hub"]["baseUrl"] == "/"
    assert "extraConfig" not in values["hub"], "nothing is downloaded when the hub starts"


def test_logo_ships_from_the_repository() -> None:
    values = values_of(run().ok())
    logo = values["hub"]["extraFiles"]["site-logo"]
    shipped = (ROOT / "assets" / "logo-placeholder.png").read_bytes()
    assert base64.b64decode(logo["binaryData"]) == shipped
    assert values["hub"]["config"]["JupyterHub"]["logo_file"] == logo["mountPath"]


def test_hub_namespace_outlives_a_destroy() -> None:
    """Deleting the namespace would delete every user's claim in it."""
    for changes in ({}, {"hub.adoptRelease": True, "hub.dbStorageClass": "local-path"}):
        namespace = run(site(**changes)).ok().named("hub-namespace")
        assert namespace.retain_on_delete, changes
