"""The JupyterHub component: chart values checked by the chart's schema and the hub's libraries."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from components.jupyterhub import HUB_URL_ANNOTATION
from sitectl.mockrun import ProgramRun, Secret, reveal
from tests.hubload import load_authenticator, load_spawner
from tests.sites import (
    DELETE,
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
    "profile-resources": {
        "hub.profiles[1].cpu": {"limit": 4, "guarantee": 1},
        "hub.profiles[1].memory": {"limit": "8G", "guarantee": "2G"},
    },
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
        if name == "profile-resources" and profile["display_name"] == "Datascience environment":
            assert (fresh.cpu_limit, fresh.cpu_guarantee) == (4, 1)
            # KubeSpawner reads G as 2**30, as it does singleuser.memory.
            assert (fresh.mem_limit, fresh.mem_guarantee) == (8 * 2**30, 2 * 2**30)
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
        assert namespace.inputs["metadata"]["annotations"][HUB_URL_ANNOTATION] == hub_url


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
    token = result.one("random:index/randomBytes:RandomBytes")
    assert isinstance(token.outputs["hex"], Secret), "proxy token must be a secret output"
    revealed = reveal(values)
    assert revealed["proxy"]["secretToken"] == reveal(token.outputs["hex"])
    assert revealed["hub"]["config"]["GenericOAuthenticator"]["client_secret"] == OAUTH_SECRET
    for res in result.resources:
        if res is release:
            continue
        assert OAUTH_SECRET not in repr(reveal(res.inputs)), res.name


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


def _admitted(values: dict[str, Any], groups: list[str]) -> bool:
    """Would the hub's own authenticator admit a user with these groups in userinfo?"""
    import asyncio

    authenticator, _ = load_authenticator(values)
    auth_model = {
        "name": "bob",
        "admin": None,
        "auth_state": {"oauth_user": {"preferred_username": "bob", "groups": groups}},
    }
    return asyncio.run(authenticator.check_allowed("bob", auth_model))


def test_allow_all_next_to_groups_would_admit_anyone() -> None:
    """Why the program refuses allowAll with allowedGroups: oauthenticator's allow_all wins.
    The config the refusal leads to (allowAll removed) admits members only."""
    groups = {"hub.oauth.allowedGroups": ["science"], "hub.oauth.claimGroupsKey": "groups"}
    assert run(site(**groups)).error is not None, "the program refuses the combination"
    restricted = values_of(run(site(**groups, **{"hub.oauth.allowAll": DELETE})).ok())
    assert _admitted(restricted, ["science"]) is True
    assert _admitted(restricted, ["other"]) is False
    # What de39cf7 deployed for that config: everyone in.
    both = deep_merge(
        restricted, {"hub": {"config": {"GenericOAuthenticator": {"allow_all": True}}}}
    )
    assert _admitted(both, ["other"]) is True


class _FormText(HTMLParser):
    """The spawn form's profile titles (h3) and descriptions (p), and every tag seen."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.texts: dict[str, list[str]] = {"h3": [], "p": []}
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._open = tag if tag in self.texts else None

    def handle_data(self, data: str) -> None:
        if self._open:
            self.texts[self._open].append(data)
            self._open = None


def test_profile_text_reaches_the_spawn_page_as_text(tmp_path: Path) -> None:
    """KubeSpawner renders titles and descriptions unescaped: what the config accepts is
    plain text on the page, and what would be markup is refused."""
    title, description = "Data science (R, Julia) \"big\" 'n' fast", "Python/R; 4 CPUs = fast!"
    changes = {"hub.profiles[1].displayName": title, "hub.profiles[1].description": description}

    def form_of(settings: dict[str, Any]) -> _FormText:
        spawner, _ = load_spawner(values_of(run(settings).ok()), tmp_path)
        profiles = spawner._get_initialized_profile_list(spawner.profile_list)
        form = _FormText()
        form.feed(spawner._render_options_form(profiles))
        return form

    form = form_of(site(**changes))
    assert form.texts["h3"] == ["Minimal environment", title]
    assert form.texts["p"] == ["A Python environment.", description]
    assert form.tags == form_of(site()).tags, "the text added no element to the page"
    for markup in ("<script>alert(1)</script>", 'x <img src=x onerror="alert(1)">'):
        assert run(site(**{"hub.profiles[1].displayName": markup})).error is not None
        assert run(site(**{"hub.profiles[1].description": markup})).error is not None


def test_namespace_carries_the_sites_resource_ceiling() -> None:
    """The largest limits the site configures, for policies to hold the merged values to."""
    from components.jupyterhub import RESOURCE_CEILING_ANNOTATION

    def ceiling(**changes: Any) -> Any:
        namespace = run(site(**changes)).ok().named("hub-namespace")
        return json.loads(namespace.inputs["metadata"]["annotations"][RESOURCE_CEILING_ANNOTATION])

    assert ceiling() == {"cpu": 0.5, "memory": "1G"}
    bigger = {"hub.profiles[1].cpu": {"limit": 4, "guarantee": 1},
              "hub.profiles[1].memory": {"limit": "900Mi", "guarantee": "1Mi"}}  # fmt: skip
    assert ceiling(**bigger) == {"cpu": 4, "memory": "1G"}, "1G is more than 900Mi"
