"""A person logs in to the hub through the generated configuration, with real components.

Chromium opens https://hub.example.test/ (HAProxy with the generated frontend and
backend, in front of configurable-http-proxy on three loopback "nodes", in front of the
hub loading the generated hub.config as the chart does), presses the login button, signs
in and consents at a real OpenID Connect provider (oidc-provider), and comes back to the
hub. Every case runs on both chart generations (conftest.chart_version): chart 3.1.0's
JupyterHub 4.0.2 with oauthenticator 16.1.0, and chart 4.4.0's JupyterHub 5.5.0 with
oauthenticator 17.4.0. See chain.py for the wiring and generated.py for the seam
where the program's real output replaces the stand-in generators.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

from .browser import (
    HeadlessChromium,
    consent,
    login,
    record_navigations,
    sign_in,
    start_login,
)
from .chain import ALICE, BOB, LOGIN_SERVICE, NODES, LoginChain, RunningSite, SiteSpec

pytestmark = [pytest.mark.login, pytest.mark.timeout(300)]

# Site variants; the provider registers one client for each (see conftest.login_chain).
# Tests using the same variant sit together, so each hub starts once.
SITES = [
    SiteSpec("allow-all"),
    SiteSpec("groups", allowed_groups=("science",)),
    SiteSpec("subpath", base_url="/jhub/"),
    # The provider still has the callback of an older deployment under /old-hub/.
    SiteSpec("drifted", registered_base_url="/old-hub/"),
]
REQUESTED_SCOPES = {"openid", "profile", "email", "offline_access"}


def _screenshot(page: Page, artifacts_dir: Path, name: str) -> None:
    page.screenshot(path=str(artifacts_dir / f"login-{name}.png"), full_page=True)


def _on_failure(artifacts_dir: Path, name: str) -> Path:
    """Where the browser saves its screen if the test fails (a stale one is removed)."""
    path = artifacts_dir / f"login-{name}-FAILED.png"
    path.unlink(missing_ok=True)
    return path


def _hub_users(site: RunningSite) -> set[str]:
    return {user["name"] for user in site.api("users")}


def _signed_in_name(page: Page) -> str:
    # The hub's page template shows the logged-in user's name first in the login widget
    # (a <p> in JupyterHub 4's template, a <span> in 5's), before the logout button.
    return page.locator("#login_widget > :first-child").inner_text().strip()


def test_allow_all_alice_logs_in_as_preferred_username(
    login_chain: LoginChain, chromium: HeadlessChromium, artifacts_dir: Path
) -> None:
    site = login_chain.open_site("allow-all")
    with chromium.page(_on_failure(artifacts_dir, "allow-all-alice")) as page:
        navigations = record_navigations(page)
        scopes = login(page, site.hub_url, LOGIN_SERVICE, login_chain.issuer, ALICE)
        _screenshot(page, artifacts_dir, "allow-all-alice")
        assert page.url == site.home_url
        assert _signed_in_name(page) == ALICE.username
        assert ALICE.sub not in page.content()

    # The provider kept offline_access on the consent page: it does so only for
    # prompt=consent, which the generated extra_authorize_params send.
    assert set(scopes) == REQUESTED_SCOPES
    # The browser went to the provider with the generated callback, and came back to it.
    authorize = next(u for u in navigations if u.startswith(login_chain.authorize_url + "?"))
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(authorize).query)
    assert query["redirect_uri"] == [site.config.callback_url]
    assert query["client_id"] == [site.config.spec.client_id]
    assert query["prompt"] == ["consent"]
    if login_chain.generation >= 4:
        # oauthenticator 17 sends PKCE (hub.oauth.pkce defaults to true); the provider
        # checked the verifier when the hub redeemed the code.
        assert query["code_challenge_method"] == ["S256"]
        assert query["code_challenge"][0]
    else:
        assert "code_challenge" not in query, "oauthenticator 16 sends no PKCE"
    assert any(u.startswith(site.config.callback_url + "?") for u in navigations)

    assert _hub_users(site) == {ALICE.username}

    # HAProxy spread the requests of this login over every node.
    served = {s["svname"]: int(s["stot"]) for s in site.backend_servers()}
    assert set(served) == set(NODES)
    assert all(count > 0 for count in served.values()), served


def test_auth_state_has_access_and_refresh_token(
    login_chain: LoginChain, chromium: HeadlessChromium, artifacts_dir: Path
) -> None:
    site = login_chain.open_site("allow-all")
    with chromium.page(_on_failure(artifacts_dir, "auth-state")) as page:
        login(page, site.hub_url, LOGIN_SERVICE, login_chain.issuer, ALICE)
        assert page.url == site.home_url

    state = site.api(f"users/{ALICE.username}")["auth_state"]
    assert state, "the hub stored no auth state (enable_auth_state, CryptKeeper.keys)"
    assert state["access_token"]
    assert state["refresh_token"], "no refresh token: offline_access needs prompt=consent"
    assert state["oauth_user"]["sub"] == ALICE.sub
    assert state["oauth_user"]["groups"] == list(ALICE.groups)
    assert "offline_access" in state["scope"]

    # The refresh token is real: the provider exchanges it for a new access token, with
    # the same client authentication the hub uses (credentials in the form body).
    client = site.config
    refreshed = login_chain.fetch_json(
        login_chain.token_url,
        {
            "grant_type": "refresh_token",
            "refresh_token": state["refresh_token"],
            "client_id": client.spec.client_id,
            "client_secret": client.client_secret,
        },
    )
    assert refreshed["access_token"]
    assert refreshed["access_token"] != state["access_token"]


def test_allowed_groups_admit_a_member(
    login_chain: LoginChain, chromium: HeadlessChromium, artifacts_dir: Path
) -> None:
    site = login_chain.open_site("groups")
    with chromium.page(_on_failure(artifacts_dir, "groups-alice")) as page:
        login(page, site.hub_url, LOGIN_SERVICE, login_chain.issuer, ALICE)
        _screenshot(page, artifacts_dir, "groups-alice")
        assert page.url == site.home_url
        assert _signed_in_name(page) == ALICE.username
    assert ALICE.username in _hub_users(site)


def test_allowed_groups_refuse_a_non_member(
    login_chain: LoginChain, chromium: HeadlessChromium, artifacts_dir: Path
) -> None:
    site = login_chain.open_site("groups")
    with chromium.page(_on_failure(artifacts_dir, "groups-bob-refused")) as page:
        statuses: dict[str, int] = {}
        page.on("response", lambda r: statuses.__setitem__(r.url.split("?")[0], r.status))
        start_login(page, site.hub_url, LOGIN_SERVICE, login_chain.issuer)
        sign_in(page, BOB)
        consent(page)
        # The provider lets bob in; the hub then refuses him on its callback.
        page.wait_for_url(site.config.callback_url + "?**")
        page.get_by_role("heading", name="403 : Forbidden").wait_for()
        _screenshot(page, artifacts_dir, "groups-bob-refused")
        assert statuses[site.config.callback_url] == 403
        assert page.locator("#logout").count() == 0
    assert BOB.username not in _hub_users(site)


def test_base_url_subpath(
    login_chain: LoginChain, chromium: HeadlessChromium, artifacts_dir: Path
) -> None:
    site = login_chain.open_site("subpath")
    assert site.hub_url == "https://hub.example.test/jhub/"
    assert site.config.callback_url == "https://hub.example.test/jhub/hub/oauth_callback"
    with chromium.page(_on_failure(artifacts_dir, "subpath-alice")) as page:
        navigations = record_navigations(page)
        login(page, site.hub_url, LOGIN_SERVICE, login_chain.issuer, ALICE)
        _screenshot(page, artifacts_dir, "subpath-alice")
        assert page.url == "https://hub.example.test/jhub/hub/home"
        assert _signed_in_name(page) == ALICE.username
    # Every hub page the browser saw was under the base URL.
    hub_pages = [u for u in navigations if u.startswith("https://hub.example.test/")]
    assert hub_pages
    assert all(u.startswith(site.hub_url) for u in hub_pages), hub_pages
    assert _hub_users(site) == {ALICE.username}


def test_callback_not_registered_fails_at_the_provider(
    login_chain: LoginChain, chromium: HeadlessChromium, artifacts_dir: Path
) -> None:
    site = login_chain.open_site("drifted")
    assert site.config.callback_url != site.config.registered_redirect_uri
    with chromium.page(_on_failure(artifacts_dir, "drifted-callback")) as page:
        navigations = record_navigations(page)
        start_login(page, site.hub_url, LOGIN_SERVICE, login_chain.issuer)
        _screenshot(page, artifacts_dir, "drifted-callback")
        # The provider's own error page, before any login form.
        assert page.url.startswith(login_chain.authorize_url + "?")
        text = page.content()
        assert "invalid_redirect_uri" in text
        assert "redirect_uri did not match" in text
        assert page.get_by_label("Username").count() == 0
    assert not any(u.startswith(site.config.callback_url) for u in navigations)
    assert _hub_users(site) == set()
