"""Chart versions and generations: the supported table, config errors, values built per generation.

Chart 3.x runs oauthenticator 16 and 4.x runs oauthenticator 17; the values differ where the
libraries differ (groups, PKCE, token refresh). What the libraries make of these values is
checked in test_hub.py, in each version's own hub libraries.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from components.config import DEFAULT_CHART_VERSION, ConfigError
from components.hub_values import ACCESS_TOKEN_CONFIG_NAME, HEALTH_CHECK_CONFIG_NAME
from policy.chart_versions import SUPPORTED_CHARTS
from sitectl.mockrun import ProgramRun, reveal
from tests.sites import DELETE, ROOT, run, site
from tests.test_plan import RENDER, plan, skip_unless_rendered, stack_file

RELEASE = "kubernetes:helm.sh/v3:Release"
GROUPS = {
    "hub.oauth.allowAll": False,
    "hub.oauth.claimGroupsKey": "groups",
    "hub.oauth.allowedGroups": ["ska-science"],
    "hub.oauth.adminGroups": ["ska-admins"],
}
AT_440 = {"hub.chartVersion": "4.4.0"}
TOKENS = {
    **AT_440,
    "hub.oauth.passAccessTokenToServer": True,
    "hub.oauth.accessTokenEnvVar": "SRCNET_ACCESS_TOKEN",
    "hub.oauth.authRefreshAgeSeconds": 120,
}


def values_of(result: ProgramRun) -> dict[str, Any]:
    return reveal(result.ok().one(RELEASE).inputs["values"])


def oauth_config(changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    config = values_of(run(site(**changes)))["hub"]["config"]
    return {k: config[k] for k in ("Authenticator", "GenericOAuthenticator")}


# -- the table and the default ------------------------------------------------------------
def test_supported_table() -> None:
    assert {
        v: (c.jupyterhub, c.oauthenticator, c.kubespawner, c.min_kubernetes)
        for v, c in SUPPORTED_CHARTS.items()
    } == {
        "3.1.0": ("4.0.2", "16.1.0", "6.1.0", (1, 23)),
        "3.3.8": ("4.1.6", "16.3.1", "6.2.0", (1, 23)),
        "4.4.0": ("5.5.0", "17.4.0", "7.0.0", (1, 28)),
    }


def test_a_new_site_without_chart_version_gets_440() -> None:
    assert DEFAULT_CHART_VERSION == "4.4.0"
    result = run(site(**{"hub.chartVersion": DELETE})).ok()
    assert result.one(RELEASE).inputs["version"] == "4.4.0"
    assert "enable_pkce" in values_of(result)["hub"]["config"]["GenericOAuthenticator"]


def test_espsrc_keeps_310_until_adopted() -> None:
    assert run().ok().one(RELEASE).inputs["version"] == "3.1.0"


# -- config errors ------------------------------------------------------------------------
BAD: list[tuple[dict[str, Any], str]] = [
    (
        {"hub.chartVersion": "4.0.0"},
        'hub.chartVersion: "4.0.0" is not a tested chart version (3.1.0, 3.3.8, 4.4.0); '
        "choose one, or set hub.allowUntestedChart: true",
    ),
    (
        {"hub.chartVersion": "2.0.0", "hub.allowUntestedChart": True},
        'hub.chartVersion: "2.0.0" is older than the oldest chart generation this program '
        "builds values for (3.x)",
    ),
    (
        {**AT_440, "site.kubernetesVersion": "1.27"},
        'site.kubernetesVersion: "1.27" is older than chart 4.4.0 supports (Kubernetes >= '
        "1.28); upgrade the cluster or choose another hub.chartVersion",
    ),
    (
        {"hub.oauth.pkce": False},
        "hub.oauth.pkce: false needs chart 4.4.0 or newer (oauthenticator 17); "
        "hub.chartVersion is 3.1.0",
    ),
    (
        {"hub.oauth.passAccessTokenToServer": True},
        "hub.oauth.passAccessTokenToServer: true needs chart 4.4.0 or newer (oauthenticator "
        "17); hub.chartVersion is 3.1.0",
    ),
    (
        {"hub.chartVersion": "3.3.8", "hub.oauth.authRefreshAgeSeconds": 300},
        "hub.oauth.authRefreshAgeSeconds: 300 needs chart 4.4.0 or newer (oauthenticator 17); "
        "hub.chartVersion is 3.3.8",
    ),
    (
        {"hub.oauth.accessTokenEnvVar": "TOKEN"},
        'hub.oauth.accessTokenEnvVar: "TOKEN" needs chart 4.4.0 or newer (oauthenticator '
        "17); hub.chartVersion is 3.1.0",
    ),
    (
        {**AT_440, "hub.oauth.enableAuthState": False, "hub.oauth.passAccessTokenToServer": True},
        "hub.oauth.passAccessTokenToServer: true needs enableAuthState: true (the token is "
        "read from the user's auth state)",
    ),
    (
        {
            **AT_440,
            "hub.oauth.scopes": ["openid", "profile"],
            "hub.oauth.authRefreshAgeSeconds": 60,
        },
        "hub.oauth.authRefreshAgeSeconds: 60 has no effect: refreshing needs enableAuthState: "
        "true and offline_access in scopes",
    ),
    (
        {**AT_440, "hub.oauth.authRefreshAgeSeconds": 2},
        "hub.oauth.authRefreshAgeSeconds: 2 is not in 5-86400",
    ),
    (
        {**AT_440, "hub.oauth.accessTokenEnvVar": "TOKEN"},
        'hub.oauth.accessTokenEnvVar: "TOKEN" has no effect without passAccessTokenToServer: true',
    ),
    (
        {**TOKENS, "hub.oauth.accessTokenEnvVar": "A'B"},
        'hub.oauth.accessTokenEnvVar: "A\'B" is not an environment variable name '
        "(letters, digits and '_')",
    ),
    (
        {"hub.adoptRelease": True, "hub.dbStorageClass": "local-path"},
        "hub.adoptedChartVersion: null is required with adoptRelease: the chart version the "
        "running release has (`helm list -n <namespace>` shows it, e.g. jupyterhub-3.1.0)",
    ),
]


@pytest.mark.parametrize(("changes", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_bad_chart_config_is_one_line(changes: dict[str, Any], message: str) -> None:
    result = run(site(**changes))
    assert isinstance(result.error, ConfigError), f"{changes}: {result.error!r}"
    assert str(result.error) == message
    assert result.resources == []


def test_untested_chart_allowed_on_request() -> None:
    result = run(site(**{"hub.chartVersion": "4.5.0", "hub.allowUntestedChart": True})).ok()
    assert result.one(RELEASE).inputs["version"] == "4.5.0"
    # Built for its generation.
    assert "enable_pkce" in values_of(result)["hub"]["config"]["GenericOAuthenticator"]


# -- values per generation ----------------------------------------------------------------
@pytest.mark.parametrize("version", ["3.1.0", "3.3.8"])
def test_3x_groups_values_are_todays(version: str) -> None:
    config = oauth_config({"hub.chartVersion": version, **GROUPS})
    assert config["Authenticator"] == {"enable_auth_state": True}
    generic = config["GenericOAuthenticator"]
    assert generic["claim_groups_key"] == "groups"
    assert generic["allowed_groups"] == ["ska-science"]
    assert generic["admin_groups"] == ["ska-admins"]
    for key in ("auth_state_groups_key", "enable_pkce", "manage_groups", "allow_all"):
        assert key not in generic, key


def test_3x_values_have_no_token_settings() -> None:
    config = oauth_config({})
    assert config["Authenticator"] == {"enable_auth_state": True}
    assert "extraConfig" not in values_of(run())["hub"]


def test_4x_groups_values() -> None:
    config = oauth_config({**AT_440, **GROUPS})
    assert config["Authenticator"]["manage_groups"] is True
    generic = config["GenericOAuthenticator"]
    # The user-facing key names the claim; oauthenticator 17 wants its path in auth state.
    assert generic["auth_state_groups_key"] == "oauth_user.groups"
    assert "claim_groups_key" not in generic
    assert generic["allowed_groups"] == ["ska-science"]
    assert generic["enable_pkce"] is True
    assert "allow_all" not in generic


def test_4x_admin_groups_alone_manage_groups() -> None:
    changes = {**AT_440, "hub.oauth.claimGroupsKey": "groups", "hub.oauth.adminGroups": ["a"]}
    assert oauth_config(changes)["Authenticator"]["manage_groups"] is True


def test_4x_allow_all_does_not_manage_groups() -> None:
    config = oauth_config(AT_440)
    assert "manage_groups" not in config["Authenticator"]
    assert config["GenericOAuthenticator"]["allow_all"] is True


@pytest.mark.parametrize(("pkce", "expected"), [(None, True), (True, True), (False, False)])
def test_4x_pkce(pkce: bool | None, expected: bool) -> None:
    changes = dict(AT_440) if pkce is None else {**AT_440, "hub.oauth.pkce": pkce}
    assert oauth_config(changes)["GenericOAuthenticator"]["enable_pkce"] is expected


def test_4x_refresh_with_auth_state_and_offline_access() -> None:
    authenticator = oauth_config(AT_440)["Authenticator"]
    assert authenticator["refresh_pre_spawn"] is True
    assert authenticator["auth_refresh_age"] == 300
    changes = {**AT_440, "hub.oauth.authRefreshAgeSeconds": 120}
    assert oauth_config(changes)["Authenticator"]["auth_refresh_age"] == 120


@pytest.mark.parametrize(
    "changes",
    [{"hub.oauth.enableAuthState": False}, {"hub.oauth.scopes": ["openid", "profile", "email"]}],
)
def test_4x_no_refresh_without_a_refresh_token(changes: dict[str, Any]) -> None:
    authenticator = oauth_config({**AT_440, **changes})["Authenticator"]
    assert "refresh_pre_spawn" not in authenticator
    assert "auth_refresh_age" not in authenticator


def test_4x_access_token_hook_in_extra_config() -> None:
    result = run(site(**TOKENS)).ok()
    values = values_of(result)
    extra = values["hub"]["extraConfig"]
    assert sorted(extra) == [ACCESS_TOKEN_CONFIG_NAME, HEALTH_CHECK_CONFIG_NAME]
    code = extra[ACCESS_TOKEN_CONFIG_NAME]
    assert "c.Spawner.auth_state_hook" in code
    assert "'SRCNET_ACCESS_TOKEN'" in code
    compile(code, "extraConfig", "exec")
    # Never a token in the values: only the hook that reads one at spawn time.
    assert "access_token" not in str(values["hub"]["config"]).lower()
    # Without the token setting, only the health-check user's entry.
    assert list(values_of(run(site(**AT_440)))["hub"]["extraConfig"]) == [HEALTH_CHECK_CONFIG_NAME]


def test_4x_access_token_env_var_default() -> None:
    changes = {**AT_440, "hub.oauth.passAccessTokenToServer": True}
    code = values_of(run(site(**changes)))["hub"]["extraConfig"][ACCESS_TOKEN_CONFIG_NAME]
    assert "'ACCESS_TOKEN'" in code


def test_site_extra_config_keeps_its_own_entries() -> None:
    changes = {**TOKENS, "hub.extraValues": {"hub": {"extraConfig": {"site": "c.X = 1"}}}}
    extra = values_of(run(site(**changes)))["hub"]["extraConfig"]
    assert sorted(extra) == [ACCESS_TOKEN_CONFIG_NAME, HEALTH_CHECK_CONFIG_NAME, "site"]


# -- the plan, as an operator runs it ------------------------------------------------------
def _plan(tmp_path: Path, settings: dict[str, Any], *extra: str) -> tuple[int, str, dict[str, Any]]:
    path = stack_file(tmp_path, settings)
    out = tmp_path / "out"
    result = plan("test", "--stack-file", str(path), "--out", str(out), *extra)
    assert result.returncode == 0, result.stderr
    document = json.loads((out / "plan.json").read_text())
    [release] = [r for r in document["resources"] if r["type"] == RELEASE]
    return result.returncode, result.stdout, release


def test_plan_of_a_new_site_without_chart_version_is_440(tmp_path: Path) -> None:
    _, stdout, release = _plan(tmp_path, site(**{"hub.chartVersion": DELETE}))
    assert release["inputs"]["version"] == "4.4.0"
    for policy in ("chart-version-vulnerable", "user-scheduler-skew", "chart-major-upgrade"):
        assert policy not in stdout, policy


ADOPTED_ESPSRC = {
    "share.existingId": "3f1c2a9e-5b7d-4c8e-9a0f-1b2c3d4e5f60",
    "share.accessRuleId": "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d",
    "hub.adoptRelease": True,
    "hub.dbStorageClass": "local-path",
    "hub.adoptedChartVersion": "3.1.0",
}
POLICY_CONFIG = ROOT / "policy" / "config.espsrc.json"


@pytest.mark.parametrize(
    ("version", "advised", "quiet"),
    [
        ("3.1.0", ["chart-version-vulnerable", "user-scheduler-skew"], ["chart-major-upgrade"]),
        ("4.4.0", ["chart-major-upgrade"], ["chart-version-vulnerable", "user-scheduler-skew"]),
    ],
)
def test_adopted_espsrc_plans_at_310_and_at_440(
    tmp_path: Path, version: str, advised: list[str], quiet: list[str]
) -> None:
    policy_config = tmp_path / "policy.json"
    config = json.loads(POLICY_CONFIG.read_text())
    config["storage-classes-defined"] = {"externalClasses": ["local-path"]}
    policy_config.write_text(json.dumps(config))
    settings = site(**ADOPTED_ESPSRC, **{"hub.chartVersion": version})
    _, stdout, release = _plan(tmp_path, settings, "--policy-config", str(policy_config))
    assert release["inputs"]["version"] == version
    assert "0 mandatory violations" in stdout
    for policy in advised:
        assert f"[advisory] {policy} (hub-release)" in stdout, policy
    for policy in quiet:
        assert policy not in stdout, policy


@pytest.mark.parametrize(
    "hostile", ["A;B", "$(id)", "`id`", "A\nB", "X'Y", "X\\", "", "-x", "A" * 300]
)
def test_hostile_access_token_env_var_is_refused(hostile: str) -> None:
    """The name lands in Python the hub runs (hub.extraConfig): only a variable name passes."""
    result = run(site(**{**TOKENS, "hub.oauth.accessTokenEnvVar": hostile}))
    assert isinstance(result.error, ConfigError), hostile
    assert str(result.error).startswith("hub.oauth.accessTokenEnvVar: ")
    assert "\n" not in str(result.error)


GROUPS_STACK = {**GROUPS, "hub.oauth.adminGroups": []}


@pytest.mark.parametrize("stack", ["espsrc", "groups"])
@pytest.mark.parametrize("version", list(SUPPORTED_CHARTS))
def test_every_version_plans(tmp_path: Path, version: str, stack: str) -> None:
    """espsrc and a groups stack at every supported version plan with exit 0.

    The plan is where the chart render (helm template and the objects' validation at the
    site's Kubernetes version) runs: this is the test that proves each version renders.
    """
    changes = {"hub.chartVersion": version, **(GROUPS_STACK if stack == "groups" else {})}
    # In CI the render must happen; on a user's machine without Helm or the chart it skips.
    _, stdout, release = _plan(tmp_path, site(**changes), *RENDER)
    assert release["inputs"]["version"] == version
    assert "0 mandatory violations" in stdout
    skip_unless_rendered(SimpleNamespace(stdout=stdout, stderr=""))  # type: ignore[arg-type]
    assert f"chart jupyterhub {version}: " in stdout and "objects, in chart/" in stdout
    assert "Chart checks: 8 run on " in stdout and ", 0 problems" in stdout
