"""The JupyterHub component: chart values checked by each chart version's schema and its hub's
own libraries (run in `.venv-hub/<version>`, see tests/hubenv.py)."""

from __future__ import annotations

import base64
import functools
import json
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest

from components.config import TEMPLATE_FIELDS, ConfigError
from components.jupyterhub import HUB_URL_ANNOTATION
from policy.chart_versions import SUPPORTED_CHARTS
from sitectl.mockrun import ProgramRun, Secret, reveal
from tests.hubenv import hub_python, hub_versions, load_in_hub, pins
from tests.hubload import PROBE_API_TOKEN, PROBE_TOKEN, VERSIONS
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
GENERIC = "oauthenticator.generic.GenericOAuthenticator"

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
# Variants only chart 4.x accepts.
VARIANTS_4X: dict[str, dict[str, Any]] = {
    "tokens": {
        "hub.oauth.passAccessTokenToServer": True,
        "hub.oauth.accessTokenEnvVar": "SRCNET_ACCESS_TOKEN",
        "hub.oauth.authRefreshAgeSeconds": 120,
    },
    "groups-no-pkce": {**VARIANTS["groups"], "hub.oauth.pkce": False},
}
VERSIONS_LIST = list(SUPPORTED_CHARTS)
GENERIC_SECTION = "GenericOAuthenticator"
# espsrc's second profile retitled: the same slug as the first ("Minimal environment"), none.
SAME_SLUG, NO_SLUG = "minimal environment!", "!!!"
# Titles for comparing the model's idea of KubeSpawner's slugs with KubeSpawner's own.
SLUG_TITLES = [
    "Minimal environment", "Data science (R, Julia)", "Data-Science: R, Julia", "GPU 2x",
    "gpu_2x", "C++", "C", "1,000 cores", "1000 cores", "it's big", "its big", "Café", "cafe",
    "Straße", "ÜBER", "uber", "日本語", "中文", "™", "½ size", "x²", "🚀 rocket", "rocket", "🚀",
    "...", "A  --  b", "a b", "Ω", "o",
]  # fmt: skip
# Authorization request parameters the hub's login handler sets itself.
LOGIN_OVERRIDES = {
    "redirect_uri": "https://elsewhere.test/callback",
    "client_id": "another-client",
    "response_type": "token",
    "scope": "admin",
    "state": "fixed-state",
    "code_challenge": "fixed-challenge",
    "code_challenge_method": "plain",
}


def variants(version: str) -> dict[str, dict[str, Any]]:
    if SUPPORTED_CHARTS[version].major >= 4:
        return {**VARIANTS, **VARIANTS_4X}
    return VARIANTS


CASES = [(v, name) for v in VERSIONS_LIST for name in variants(v)]


def _site(version: str, variant: str) -> dict[str, Any]:
    changes = {"hub.chartVersion": version, **variants(version)[variant]}
    settings = site(**{k: v for k, v in changes.items() if v is not None})
    for key, value in changes.items():
        if value is None:
            section, _, name = key.partition(".")
            settings[section].pop(name)
    return settings


def values_of(result: ProgramRun) -> dict[str, Any]:
    return reveal(result.one(RELEASE).inputs["values"])


@functools.cache
def _run(version: str, variant: str) -> ProgramRun:
    return run(_site(version, variant)).ok()


def _runbook_values(version: str) -> dict[str, Any]:
    """espsrc at this version with the runbook's deprecated `username_key`."""
    values = values_of(_run(version, "espsrc"))
    generic = values["hub"]["config"]["GenericOAuthenticator"]
    generic["username_key"] = generic.pop("username_claim")
    return values


def _without_manage_groups(version: str) -> dict[str, Any]:
    """The 4.x groups values as 3.x builds them: no manage_groups."""
    values = values_of(_run(version, "groups"))
    values["hub"]["config"]["Authenticator"].pop("manage_groups", None)
    return values


def _with_kubernetes_memory_suffix(version: str) -> dict[str, Any]:
    """espsrc's values with the memory limit in Kubernetes' spelling, which the model refuses."""
    values = values_of(_run(version, "espsrc"))
    values["singleuser"]["memory"]["limit"] = "1Gi"
    return values


def _changed(version: str, variant: str, changes: dict[str, Any]) -> dict[str, Any]:
    """A variant's values with changes the model refuses, as hub.extraValues would merge them."""
    return deep_merge(values_of(_run(version, variant)), changes)


def _env(**env: str) -> dict[str, Any]:
    return {"singleuser": {"extraEnv": env}}


def _token_env_renamed(version: str, name: str) -> dict[str, Any]:
    """The tokens variant with the access token put in the variable `name`."""
    from components.hub_values import ACCESS_TOKEN_CONFIG_NAME

    values = values_of(_run(version, "tokens"))
    hook = values["hub"]["extraConfig"][ACCESS_TOKEN_CONFIG_NAME]
    values["hub"]["extraConfig"][ACCESS_TOKEN_CONFIG_NAME] = hook.replace(
        "SRCNET_ACCESS_TOKEN", name
    )
    return values


@functools.cache
def loaded(version: str) -> dict[str, Any]:
    """Every variant of this version, loaded in one subprocess into its hub libraries."""
    cases = {name: {"values": values_of(_run(version, name))} for name in variants(version)}
    cases["runbook-username-key"] = {"values": _runbook_values(version)}
    cases["no-manage-groups"] = {"values": _without_manage_groups(version)}
    cases["memory-1Gi"] = {"values": _with_kubernetes_memory_suffix(version)}
    cases["env-lone-brace"] = {"values": _changed(version, "espsrc", _env(SITE_NOTE="a}b"))}
    fields = {f"SITE_{f.upper()}": f"{{{f}}} files" for f in TEMPLATE_FIELDS}
    cases["env-template"] = {
        "values": _changed(version, "espsrc", _env(**fields, SITE_BRACE="{{literal}}"))
    }
    cases["env-unknown-field"] = {"values": _changed(version, "espsrc", _env(SITE_NOTE="{user}"))}
    cases["env-hub-token"] = {
        "values": _changed(version, "espsrc", _env(JUPYTERHUB_API_TOKEN="site-value"))
    }
    overrides = {"hub": {"config": {GENERIC_SECTION: {"extra_authorize_params": LOGIN_OVERRIDES}}}}
    cases["authorize-overrides"] = {"values": _changed(version, "espsrc", overrides)}
    for name, title in (("profiles-same-slug", SAME_SLUG), ("profiles-empty-slug", NO_SLUG)):
        values = values_of(_run(version, "espsrc"))
        values["singleuser"]["profileList"][1]["display_name"] = title
        cases[name] = {"values": values}
    corpus = [{"display_name": title} for title in SLUG_TITLES]
    cases["slug-corpus"] = {"values": _changed(version, "no-profiles", {"singleuser": {
        "profileList": [{**corpus[0], "default": True}, *corpus[1:]]}})}  # fmt: skip
    listed = values_of(_run(version, "espsrc"))
    listed["singleuser"]["extraEnv"] = [{"name": "SITE_NOTE", "value": "x"}]
    cases["env-as-list"] = {"values": listed}
    lowercase = {"hub": {"config": {"kubeSpawner": {"cpu_limit": 2}}}}
    cases["lowercase-section"] = {"values": _changed(version, "espsrc", lowercase)}
    capacity = {"singleuser": {"storage": {"capacity": "500K"}}}
    cases["capacity-K"] = {"values": _changed(version, "espsrc", capacity)}
    if SUPPORTED_CHARTS[version].major >= 4:
        cases["token-in-hub-token"] = {
            "values": _token_env_renamed(version, "JUPYTERHUB_API_TOKEN")
        }
        cases["token-over-extra-env"] = {
            "values": _changed(version, "tokens", _env(SRCNET_ACCESS_TOKEN="site-value"))
        }
    return load_in_hub(version, cases)


@pytest.mark.parametrize(("version", "variant"), CASES)
def test_values_pass_the_chart_schema(version: str, variant: str) -> None:
    merged = deep_merge(chart_defaults(version), values_of(_run(version, variant)))
    validator = jsonschema.Draft7Validator(chart_schema(version))
    errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(merged)]
    assert errors == [], f"{version} {variant}: {errors}"


def test_schema_check_can_fail() -> None:
    """The schema check above is not vacuous: a misspelt chart key is rejected."""
    values = values_of(run().ok())
    values["singleuser"]["storage"]["dynamic"]["storageClassName"] = "oops"
    merged = deep_merge(chart_defaults(), values)
    assert list(jsonschema.Draft7Validator(chart_schema()).iter_errors(merged))


@pytest.mark.parametrize("version", VERSIONS_LIST)
def test_hub_environment_runs_the_charts_libraries(version: str) -> None:
    chart = SUPPORTED_CHARTS[version]
    expected = {
        "jupyterhub": chart.jupyterhub,
        "oauthenticator": chart.oauthenticator,
        "jupyterhub-kubespawner": chart.kubespawner,
    }
    assert hub_versions() == sorted(SUPPORTED_CHARTS)
    pinned = pins(version)
    assert {k: pinned[k] for k in expected} == expected
    installed = loaded(version)[VERSIONS]
    assert {k: installed[k] for k in expected} == expected
    for name in ("tornado", "traitlets", "jupyter-server"):
        assert installed[name] == pinned[name], name


@pytest.mark.parametrize(("version", "variant"), CASES)
def test_hub_config_loads_cleanly_into_the_hubs_libraries(version: str, variant: str) -> None:
    report = loaded(version)[variant]
    assert "error" not in report, report
    authenticator = report["authenticator"]
    assert authenticator["warnings"] == [], f"{version} {variant}"
    assert authenticator["class"] == GENERIC
    traits = authenticator["traits"]
    result = _run(version, variant)
    oauth = _site(version, variant)["hub"]["oauth"]
    assert traits["username_claim"] == "preferred_username"
    assert traits["userdata_token_method"] == "header"
    assert traits["scope"] == oauth["scopes"]
    assert traits["client_secret"] == OAUTH_SECRET
    assert traits["oauth_callback_url"] == result.outputs["oauth_callback_url"]
    assert traits["enable_auth_state"] is True
    groups = variant.startswith("groups")
    assert traits["allow_all"] is (not groups)
    if groups:
        assert traits["allowed_groups"] == ["ska-science"]
        assert traits["admin_groups"] == ["ska-admins"]
    if SUPPORTED_CHARTS[version].major >= 4:
        assert traits["manage_groups"] is groups
        if groups:
            assert traits["auth_state_groups_key"] == "oauth_user.groups"
        assert traits["enable_pkce"] is (variant != "groups-no-pkce")
        assert traits["refresh_pre_spawn"] is True
        assert traits["auth_refresh_age"] == (120 if variant == "tokens" else 300)
    else:
        assert "enable_pkce" not in traits, "oauthenticator 16 has no PKCE"
        if groups:
            assert traits["claim_groups_key"] == "groups"


@pytest.mark.parametrize("version", VERSIONS_LIST)
def test_only_4x_refreshes_tokens(version: str) -> None:
    """oauthenticator 17.4 defines refresh_user; with 16.x it is JupyterHub's no-op."""
    defined_in = loaded(version)["espsrc"]["authenticator"]["defines_refresh_user"]
    major = SUPPORTED_CHARTS[version].major
    assert defined_in == ("oauthenticator.oauth2" if major >= 4 else "jupyterhub.auth")


@pytest.mark.parametrize("version", VERSIONS_LIST)
def test_runbook_hub_config_would_warn(version: str) -> None:
    """The same loader catches the runbook's deprecated `username_key`."""
    logged = loaded(version)["runbook-username-key"]["authenticator"]["warnings"]
    assert any("username_key is deprecated" in line for line in logged), logged


def test_4x_refuses_groups_without_manage_groups() -> None:
    """Why the program writes manage_groups on 4.x: oauthenticator 17 refuses to start."""
    error = loaded("4.4.0")["no-manage-groups"]["error"]
    assert "requires GenericOAuthenticator.manage_groups to also be set" in error


@pytest.mark.parametrize(("version", "variant"), CASES)
def test_kubespawner_accepts_the_profile_list(version: str, variant: str) -> None:
    spawner = loaded(version)[variant]["spawner"]
    assert spawner["warnings"] == [], f"{version} {variant}"
    expected = {
        p["displayName"]: p.get("image", "quay.io/jupyter/minimal-notebook:2025-11-10")
        for p in _site(version, variant)["hub"].get("profiles", [])
    }
    assert spawner["profiles"] == list(expected)
    assert spawner["form_names_all_shown"]
    assert spawner["images"] == expected
    assert spawner["default_url"] == "/lab"
    # The chart hands singleuser.cpu and .memory to KubeSpawner; every variant keeps
    # espsrc's 0.5 CPU and 1G, which KubeSpawner reads as 2**30 bytes.
    assert _site(version, variant)["hub"]["singleuser"]["memory"] == {
        "limit": "1G",
        "guarantee": "1G",
    }
    assert spawner["default_resources"] == [0.5, 0.5, 2**30, 2**30]
    if variant == "profile-resources":
        # KubeSpawner reads G as 2**30, as it does singleuser.memory.
        resources = spawner["resources"]["Datascience environment"]
        assert resources == [4, 1, 8 * 2**30, 2 * 2**30]


@pytest.mark.parametrize("version", VERSIONS_LIST)
def test_the_hub_refuses_kubernetes_memory_suffixes(version: str) -> None:
    """Why hub.singleuser.memory takes K, M, G or T only (tests/test_config.py): the chart
    gives the value to KubeSpawner's mem_limit, which refuses 1Gi, and the hub stops."""
    error = loaded(version)["memory-1Gi"]["error"]
    assert "1Gi is not a valid memory specification" in error, error


@pytest.mark.parametrize("version", VERSIONS_LIST)
def test_auth_state_hook_passes_the_access_token(version: str) -> None:
    """The program's extraConfig hook, run by KubeSpawner as the hub runs it at spawn."""
    reports = loaded(version)
    if SUPPORTED_CHARTS[version].major >= 4:
        environment = reports["tokens"]["spawner"]["environment_after_hook"]
        assert environment["SRCNET_ACCESS_TOKEN"] == PROBE_TOKEN
    for variant in VARIANTS:
        environment = reports[variant]["spawner"]["environment_after_hook"]
        assert PROBE_TOKEN not in environment.values(), f"{version} {variant}"


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
    assert release.inputs["version"] == "3.1.0", "espsrc keeps 3.1.0 until adopted"
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
    for changes in (
        {},
        {
            "hub.adoptRelease": True,
            "hub.dbStorageClass": "local-path",
            "hub.adoptedChartVersion": "3.1.0",
        },
    ):
        namespace = run(site(**changes)).ok().named("hub-namespace")
        assert namespace.retain_on_delete, changes


def _admitted(values: dict[str, Any], *groups: list[str]) -> list[bool]:
    """Would the hub's own authenticator (3.1.0's) admit a user with each of these groups?"""
    return list(
        load_in_hub("3.1.0", {"c": {"values": values, "admit": list(groups)}})["c"]["admitted"]
    )


def test_allow_all_next_to_groups_would_admit_anyone() -> None:
    """Why the program refuses allowAll with allowedGroups: oauthenticator's allow_all wins.
    The config the refusal leads to (allowAll removed) admits members only."""
    groups = {"hub.oauth.allowedGroups": ["science"], "hub.oauth.claimGroupsKey": "groups"}
    refused = run(site(**groups))
    assert isinstance(refused.error, ConfigError), "the program refuses the combination"
    assert str(refused.error).startswith("hub.oauth.allowAll: true admits every account")
    restricted = values_of(run(site(**groups, **{"hub.oauth.allowAll": DELETE})).ok())
    assert _admitted(restricted, ["science"], ["other"]) == [True, False]
    # What de39cf7 deployed for that config: everyone in.
    both = deep_merge(
        restricted, {"hub": {"config": {"GenericOAuthenticator": {"allow_all": True}}}}
    )
    assert _admitted(both, ["other"]) == [True]


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
        report = load_in_hub("3.1.0", {"c": {"values": values_of(run(settings).ok())}})
        form = _FormText()
        form.feed(report["c"]["spawner"]["form"])
        return form

    form = form_of(site(**changes))
    assert form.texts["h3"] == ["Minimal environment", title]
    assert form.texts["p"] == ["A Python environment.", description]
    assert form.tags == form_of(site()).tags, "the text added no element to the page"
    for markup in ("<script>alert(1)</script>", 'x <img src=x onerror="alert(1)">'):
        for key in ("hub.profiles[1].displayName", "hub.profiles[1].description"):
            refused = run(site(**{key: markup}))
            # Refused as bad config, in the line naming the key: not a crash.
            assert isinstance(refused.error, ConfigError), (key, refused.error)
            assert str(refused.error).startswith(f"{key}: "), str(refused.error)
            assert refused.resources == [], key


def test_namespace_carries_the_sites_resource_ceiling() -> None:
    """The largest limits the site configures, for policies to hold the merged values to."""
    from components.jupyterhub import RESOURCE_CEILING_ANNOTATION

    def ceiling(**changes: Any) -> Any:
        namespace = run(site(**changes)).ok().named("hub-namespace")
        return json.loads(namespace.inputs["metadata"]["annotations"][RESOURCE_CEILING_ANNOTATION])

    assert ceiling() == {"cpu": 0.5, "memory": "1G"}
    bigger = {"hub.profiles[1].cpu": {"limit": 4, "guarantee": 1},
              "hub.profiles[1].memory": {"limit": "1020M", "guarantee": "1M"}}  # fmt: skip
    # KubeSpawner's G is 1024M: 1G is more than 1020M (which 10**9 bytes would not be).
    assert ceiling(**bigger) == {"cpu": 4, "memory": "1G"}


@pytest.mark.parametrize("version", VERSIONS_LIST)
def test_the_health_check_user_can_start_a_server_on_4x(version: str) -> None:
    """oauthenticator 17 refreshes auth state before a spawn and refuses a user without
    one; the health-check user never logs in through the provider (login suite:
    test_verify's session check at 4.4.0)."""
    from components.hub_values import HEALTH_CHECK_CONFIG_NAME, HEALTH_CHECK_USER

    extra = values_of(run(site(**{"hub.chartVersion": version})).ok())["hub"]
    code = extra.get("extraConfig", {}).get(HEALTH_CHECK_CONFIG_NAME)
    if SUPPORTED_CHARTS[version].major < 4:
        assert code is None, "oauthenticator 16 does not refresh before a spawn"
        return
    assert code is not None
    namespace: dict[str, Any] = {"c": SimpleNamespace(GenericOAuthenticator=SimpleNamespace())}
    exec(compile(code, HEALTH_CHECK_CONFIG_NAME, "exec"), namespace)  # noqa: S102
    hook = namespace["c"].GenericOAuthenticator.refresh_user_hook
    assert hook(None, SimpleNamespace(name=HEALTH_CHECK_USER), None) is True
    # Anyone else, and the health-check user once it has auth state: the usual refresh.
    assert hook(None, SimpleNamespace(name="alice"), None) is None
    assert hook(None, SimpleNamespace(name=HEALTH_CHECK_USER), {"access_token": "t"}) is None


@pytest.mark.parametrize("version", VERSIONS_LIST)
def test_hubload_runs_the_charts_own_config(version: str) -> None:
    """tests/hubload.py builds the hub's config with the chart's jupyterhub_config.py: the
    hub.config sections come after singleuser (so hub.config.KubeSpawner wins), the chart's
    defaults fill what the values leave out, and the chart's own settings are there."""
    values = values_of(_run(version, "espsrc"))
    over = deep_merge(values, {"hub": {"config": {"KubeSpawner": {"cpu_limit": 2}}}})
    report = load_in_hub(version, {"over": {"values": over}})["over"]
    assert "error" not in report, report
    # singleuser.cpu.limit is 0.5; the chart applies hub.config last.
    assert report["spawner"]["default_resources"][0] == 2
    env = report["spawner"]["server_env"]
    assert env["JUPYTERHUB_SINGLEUSER_APP"] == "jupyter_server.serverapp.ServerApp"
    assert env["JUPYTERHUB_API_TOKEN"] == PROBE_API_TOKEN


@pytest.mark.parametrize("version", VERSIONS_LIST)
def test_kubespawner_reads_braces_in_environment_values(version: str) -> None:
    """Why hub.singleuser.extraEnv values may hold only the template fields every chart's
    KubeSpawner fills (tests/test_config.py): it formats each value at spawn, so a lone
    brace or an unknown field stops the spawn, and the known fields are filled."""
    reports = loaded(version)
    error = reports["env-lone-brace"].get("error", "")
    assert "Single '}' encountered in format string" in error, reports["env-lone-brace"]
    assert "KeyError: 'user'" in reports["env-unknown-field"].get("error", "")
    env = reports["env-template"]["spawner"]["server_env"]
    for field in TEMPLATE_FIELDS:
        value = env[f"SITE_{field.upper()}"]
        assert value.endswith(" files") and "{" not in value, (field, value)
        if "servername" not in field:  # the default server's name is empty
            assert value != " files", field
    # KubeSpawner's stand-in user: mock_name before 4.x, mock@name since.
    assert env["SITE_UNESCAPED_USERNAME"] in ("mock_name files", "mock@name files")
    assert env["SITE_BRACE"] == "{literal}"
    accepted = run(
        site(**{"hub.chartVersion": version, "hub.singleuser.extraEnv.SITE_HOME": "/h/{username}"})
    )
    accepted.ok()
    refused = run(site(**{"hub.chartVersion": version, "hub.singleuser.extraEnv.SITE_NOTE": "a}b"}))
    assert str(refused.error).startswith("hub.singleuser.extraEnv.SITE_NOTE: has a '{' or '}'")


@pytest.mark.parametrize("version", VERSIONS_LIST)
def test_an_environment_value_replaces_the_hubs_own(version: str) -> None:
    """Why names the hub sets (JUPYTERHUB_API_TOKEN, ...) are refused in extraEnv and as
    oauth.accessTokenEnvVar: KubeSpawner applies the configured environment after the
    hub's, and the server would start without the token the hub made for it."""
    reports = loaded(version)
    env = reports["env-hub-token"]["spawner"]["server_env"]
    assert env["JUPYTERHUB_API_TOKEN"] == "site-value"
    assert reports["espsrc"]["spawner"]["server_env"]["JUPYTERHUB_API_TOKEN"] == PROBE_API_TOKEN
    changes = {"hub.chartVersion": version, "hub.singleuser.extraEnv.JUPYTERHUB_API_TOKEN": "x"}
    assert str(run(site(**changes)).error).startswith(
        'hub.singleuser.extraEnv: key "JUPYTERHUB_API_TOKEN" is set by the hub itself'
    )
    if SUPPORTED_CHARTS[version].major < 4:
        return
    hooked = reports["token-in-hub-token"]["spawner"]["server_env"]
    assert hooked["JUPYTERHUB_API_TOKEN"] == PROBE_TOKEN, "the access token took its place"
    changes = {**VARIANTS_4X["tokens"], "hub.chartVersion": version}
    changes["hub.oauth.accessTokenEnvVar"] = "JUPYTERHUB_API_TOKEN"
    assert str(run(site(**changes)).error).startswith(
        'hub.oauth.accessTokenEnvVar: "JUPYTERHUB_API_TOKEN" is set by the hub itself'
    )
    # An extraEnv variable of the access token's name: the hook replaces its value.
    replaced = reports["token-over-extra-env"]["spawner"]["environment_after_hook"]
    assert replaced["SRCNET_ACCESS_TOKEN"] == PROBE_TOKEN
    changes = {**VARIANTS_4X["tokens"], "hub.chartVersion": version}
    changes["hub.singleuser.extraEnv.SRCNET_ACCESS_TOKEN"] = "site-value"
    assert str(run(site(**changes)).error).startswith(
        'hub.oauth.accessTokenEnvVar: "SRCNET_ACCESS_TOKEN" is also set in hub.singleuser.extraEnv'
    )


@pytest.mark.parametrize("version", VERSIONS_LIST)
def test_the_login_handler_and_extra_authorize_params(version: str) -> None:
    """Why hub.oauth.extraAuthorizeParams may not name what the login handler sets: the
    handler's redirect takes redirect_uri, client_id and response_type from them (users
    land elsewhere, or with another client or flow), and replaces state, scope and, with
    PKCE, the challenge; without PKCE (3.x) a given challenge goes out with no verifier."""
    sent = loaded(version)["authorize-overrides"]["authenticator"]["authorize_params"]
    for key in ("redirect_uri", "client_id", "response_type"):
        assert sent[key] == LOGIN_OVERRIDES[key], (version, key, sent)
    assert sent["state"] != LOGIN_OVERRIDES["state"]
    assert sent["scope"] == " ".join(_site(version, "espsrc")["hub"]["oauth"]["scopes"])
    pkce = SUPPORTED_CHARTS[version].major >= 4
    assert (sent["code_challenge"] == LOGIN_OVERRIDES["code_challenge"]) is not pkce
    plain = loaded(version)["espsrc"]["authenticator"]["authorize_params"]
    assert plain["redirect_uri"] == _run(version, "espsrc").outputs["oauth_callback_url"]
    for key in LOGIN_OVERRIDES:
        changes = {"hub.chartVersion": version, "hub.oauth.extraAuthorizeParams": {key: "x"}}
        error = str(run(site(**changes)).error)
        assert error.startswith(
            f'hub.oauth.extraAuthorizeParams: key "{key}" is set by the hub\'s login handler'
        ), error


@pytest.mark.parametrize("version", VERSIONS_LIST)
def test_profiles_are_chosen_by_the_slug_of_their_title(version: str) -> None:
    """Why two titles with one slug, or a title with none, are refused (tests/test_config.py):
    the spawn form sends the slug KubeSpawner derives from the title, and the server starts
    with the first profile of that slug, or the default profile for an empty one."""
    from components.validators import profile_slug

    reports = loaded(version)
    datascience = _site(version, "espsrc")["hub"]["profiles"][1]["image"]
    minimal = "quay.io/jupyter/minimal-notebook:2025-11-10"
    same = reports["profiles-same-slug"]["spawner"]
    assert same["slugs"] == ["minimal-environment", "minimal-environment"]
    assert same["images"][SAME_SLUG] == minimal != datascience
    empty = reports["profiles-empty-slug"]["spawner"]
    assert empty["slugs"][1] == ""
    assert empty["images"][NO_SLUG] == minimal
    for title in (SAME_SLUG, NO_SLUG):
        changes = {"hub.chartVersion": version, "hub.profiles[1].displayName": title}
        assert str(run(site(**changes)).error).startswith(f'hub.profiles[1].displayName: "{title}"')
    # The model's slugs against KubeSpawner's: the same wherever the model's is ASCII, and
    # never an empty slug or a clash the hub would not find.
    hub = reports["slug-corpus"]["spawner"]["slugs"]
    model = [profile_slug(title) for title in SLUG_TITLES]
    for title, ours, theirs in zip(SLUG_TITLES, model, hub, strict=True):
        if ours.isascii():
            assert ours == theirs, (title, ours, theirs)
        if not ours:
            assert not theirs, title
    for i in range(len(model)):
        for j in range(i):
            if model[i] == model[j]:
                assert hub[i] == hub[j], (SLUG_TITLES[j], SLUG_TITLES[i])


@pytest.mark.parametrize("version", VERSIONS_LIST)
def test_what_the_chart_does_with_odd_extra_values(version: str) -> None:
    """Why hub.extraValues may not give singleuser.extraEnv as a list or a hub.config
    section in lowercase (tests/test_config.py): the chart hands the list to KubeSpawner,
    which refuses it; chart 4.x stops the hub on the section, 3.x drops it unread."""
    reports = loaded(version)
    error = reports["env-as-list"].get("error", "")
    assert "'environment' trait of a KubeSpawner instance expected a dict" in error, error
    lowercase = reports["lowercase-section"]
    if SUPPORTED_CHARTS[version].major >= 4:
        assert "FATAL: Invalid hub.config section name: kubeSpawner" in lowercase["error"]
    else:
        assert lowercase["spawner"]["default_resources"][0] == 0.5, "cpu_limit: 2 unread"
    for extra in (
        {"singleuser": {"extraEnv": [{"name": "SITE_NOTE", "value": "x"}]}},
        {"hub": {"config": {"kubeSpawner": {"cpu_limit": 2}}}},
    ):
        refused = run(site(**{"hub.chartVersion": version, "hub.extraValues": extra}))
        assert isinstance(refused.error, ConfigError), extra
        assert str(refused.error).startswith("hub.extraValues."), str(refused.error)


@pytest.mark.parametrize("version", VERSIONS_LIST)
def test_kubespawner_asks_for_the_capacity_as_written(version: str) -> None:
    """Why hub.singleuser.storage.capacity must be a Kubernetes quantity (its kilo is k,
    tests/test_config.py; the policy checks the merged values, tests/test_policy.py):
    KubeSpawner puts it in each user's claim unchanged, for the API server to refuse."""
    reports = loaded(version)
    assert reports["espsrc"]["spawner"]["claim_request"] == {"storage": "1Gi"}
    assert reports["capacity-K"]["spawner"]["claim_request"] == {"storage": "500K"}
    changes = {"hub.chartVersion": version, "hub.singleuser.storage.capacity": "500K"}
    refused = str(run(site(**changes)).error)
    assert refused.startswith(
        'hub.singleuser.storage.capacity: "500K" is not a Kubernetes quantity'
    )


def _get_env_names(version: str) -> set[str]:
    """The variables JupyterHub's Spawner.get_env and KubeSpawner.get_env set, read from
    the source of this version's hub libraries."""
    import ast
    import re

    python = hub_python(version)
    (site_packages,) = python.parent.parent.glob("lib/python*/site-packages")
    names: set[str] = set()
    for path, cls in (
        ("jupyterhub/spawner.py", "Spawner"),
        ("kubespawner/spawner.py", "KubeSpawner"),
    ):
        source = (site_packages / path).read_text()
        for node in ast.parse(source).body:
            if isinstance(node, ast.ClassDef) and node.name == cls:
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name == "get_env":
                        code = ast.get_source_segment(source, item) or ""
                        names |= set(
                            re.findall(r"env\[\s*['\"]([A-Za-z0-9_]+)['\"]\s*\]\s*=", code)
                        )
    return names


def test_the_refused_environment_names_are_those_the_hub_sets() -> None:
    """HUB_SET_ENV is the union of what each chart version's hub puts in a server's
    environment: a new hub version that sets another variable fails here."""
    from components.config import HUB_SET_ENV

    found = {version: _get_env_names(version) for version in VERSIONS_LIST}
    for version, names in found.items():
        assert "JUPYTERHUB_API_TOKEN" in names, f"{version}: get_env not found"
    assert set().union(*found.values()) == HUB_SET_ENV
