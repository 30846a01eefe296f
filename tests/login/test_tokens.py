"""Tokens that refresh, on chart 4.4.0 (JupyterHub 5.5.0, oauthenticator 17.4.0), in a browser.

The provider gives this site's client access tokens that expire after a few seconds (and
no clock tolerance); the site asks the hub to check tokens older than
`hub.oauth.authRefreshAgeSeconds` and to pass the access token to servers. Cases:

- after expiry, the hub's refresh gives alice a new access token without a new login;
- once the provider has revoked her refresh token, her next request that needs a refresh
  sends her to the hub's login page;
- a server spawned after expiry gets the access token current at spawn time. The server
  is spawned by JupyterHub's SimpleLocalProcessSpawner, which runs jupyterhub-singleuser
  as a local process (the chart's KubeSpawner needs a cluster); the hook that sets the
  variable is the program's own `hub.extraConfig` entry, which KubeSpawner runs the same
  way (tests/test_hub.py checks it in KubeSpawner 7).

Chart 3.x has no such keys (a config error, tests/test_chart_generations.py), and its
oauthenticator 16 has no refresh_user.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from .browser import HeadlessChromium, login
from .chain import ALICE, LOGIN_SERVICE, LoginChain, RunningSite, SiteSpec
from .processes import wait_until

pytestmark = [pytest.mark.login, pytest.mark.timeout(300)]

ACCESS_TOKEN_TTL = 4
REFRESH_AGE = 5
TOKEN_ENV = "SRCNET_ACCESS_TOKEN"
SITES = [
    SiteSpec(
        "tokens",
        oauth={
            "authRefreshAgeSeconds": REFRESH_AGE,
            "passAccessTokenToServer": True,
            "accessTokenEnvVar": TOKEN_ENV,
        },
        access_token_ttl=ACCESS_TOKEN_TTL,
    ),
]


@pytest.fixture(scope="module")
def chart_version() -> str:
    """These keys exist from chart 4.4.0 on (oauthenticator 17.4's refresh_user)."""
    return "4.4.0"


def _auth_state(site: RunningSite) -> dict[str, Any]:
    state: dict[str, Any] = site.api(f"users/{ALICE.username}")["auth_state"]
    return state


def _expire() -> None:
    """Wait until the access token has expired and its check is due."""
    time.sleep(max(ACCESS_TOKEN_TTL, REFRESH_AGE) + 1.5)


def _refresh_grants(chain: LoginChain, site: RunningSite) -> int:
    client = site.config.spec.client_id
    return chain.idp_grants().count((client, "refresh_token"))


def test_generated_values_ask_for_refresh(login_chain: LoginChain) -> None:
    site = login_chain.open_site("tokens")
    authenticator = site.config.hub_config["Authenticator"]
    assert authenticator["refresh_pre_spawn"] is True
    assert authenticator["auth_refresh_age"] == REFRESH_AGE


def test_expired_access_token_is_refreshed_without_a_new_login(
    login_chain: LoginChain, chromium: HeadlessChromium, artifacts_dir: Path
) -> None:
    site = login_chain.open_site("tokens")
    with chromium.page(artifacts_dir / "login-tokens-refresh-FAILED.png") as page:
        login(page, site.hub_url, LOGIN_SERVICE, login_chain.issuer, ALICE)
        assert page.url == site.home_url
        before = _auth_state(site)
        grants = _refresh_grants(login_chain, site)
        _expire()
        page.goto(site.home_url)
        page.wait_for_load_state("load")
        # Still signed in, never sent to the provider again.
        assert page.url == site.home_url
        assert page.locator("#logout").count() == 1
    after = _auth_state(site)
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"], "the hub keeps a refresh token"
    assert _refresh_grants(login_chain, site) == grants + 1, "one refresh grant reached it"


def test_spawned_server_gets_the_access_token_current_at_spawn(
    login_chain: LoginChain, chromium: HeadlessChromium, artifacts_dir: Path
) -> None:
    site = login_chain.open_site("tokens")
    with chromium.page(artifacts_dir / "login-tokens-spawn-FAILED.png") as page:
        login(page, site.hub_url, LOGIN_SERVICE, login_chain.issuer, ALICE)
        at_login = _auth_state(site)["access_token"]
        _expire()
        try:
            # The hub's spawn page, as a user who presses "Start My Server". The hub
            # refreshed the token for this request; no request of alice's can refresh it
            # again within REFRESH_AGE, so reading it now reads the token of the spawn.
            # (The server's own first calls to the hub, made as alice, come later and do
            # refresh it: a running server's token is soon not the hub's current one.)
            page.goto(f"{site.hub_url}hub/spawn")
            at_spawn = _auth_state(site)["access_token"]
            page.goto("about:blank")
            wait_until(
                "alice's server to be ready",
                lambda: site.api(f"users/{ALICE.username}")["servers"][""]["ready"],
                site.hub,
                120,
            )
            environment = site.server_environment(ALICE.username)
            # A server keeps the token it started with: the hub refreshes alice's token
            # again once it expires, and the running server still holds the old one.
            _expire()
            page.goto(site.home_url)
            page.wait_for_load_state("load")
            assert page.url == site.home_url
            later = _auth_state(site)["access_token"]
            still = site.server_environment(ALICE.username)[TOKEN_ENV]
        finally:
            site.api_delete(f"users/{ALICE.username}/server")
    assert at_spawn != at_login, "the hub refreshed the expired token before the spawn"
    assert environment[TOKEN_ENV] == at_spawn
    assert "ACCESS_TOKEN" not in environment, "only the configured variable"
    assert later != at_spawn
    assert still == at_spawn


def test_revoked_refresh_token_sends_alice_to_log_in_again(
    login_chain: LoginChain, chromium: HeadlessChromium, artifacts_dir: Path
) -> None:
    site = login_chain.open_site("tokens")
    with chromium.page(artifacts_dir / "login-tokens-revoked-FAILED.png") as page:
        login(page, site.hub_url, LOGIN_SERVICE, login_chain.issuer, ALICE)
        assert page.url == site.home_url
        login_chain.revoke(site.config, _auth_state(site)["refresh_token"])
        _expire()
        page.goto(site.home_url)
        page.wait_for_load_state("load")
        page.screenshot(path=str(artifacts_dir / "login-tokens-revoked.png"), full_page=True)
        # The hub's own login page, with its button to the provider; signed out.
        assert page.url.startswith(f"{site.hub_url}hub/login"), page.url
        assert page.get_by_role("button", name=f"Sign in with {LOGIN_SERVICE}").count() == 1
        assert page.locator("#logout").count() == 0
