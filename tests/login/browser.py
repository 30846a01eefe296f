"""Headless Chromium (Debian's) driven by Playwright, trusting only the test CA.

Chromium verifies every certificate: the test CA goes into an NSS database in a private
HOME (`$HOME/.pki/nssdb`, where Chromium on Linux looks), made with `certutil`. Ignoring
certificate errors would hide exactly the mistakes these tests look for (wrong host
names in URLs). The hub host name resolves to 127.0.0.1 through `--host-resolver-rules`,
so the browser uses the very URLs the generated configuration derived.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

    from .chain import LoginUser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Generous for a 2-core machine: a step covers several redirects through the chain.
STEP_TIMEOUT_MS = 20000


def make_nss_home(home: Path, ca_cert: Path) -> None:
    """A HOME whose NSS database trusts `ca_cert` for TLS servers."""
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"],
        check=True,
        capture_output=True,
    )
    # "C,," : a trusted CA for issuing server certificates, nothing else.
    subprocess.run(
        [
            "certutil",
            "-A",
            "-d",
            f"sql:{nssdb}",
            "-n",
            "login-test-ca",
            "-t",
            "C,,",
            "-i",
            str(ca_cert),
        ],
        check=True,
        capture_output=True,
    )


class HeadlessChromium:
    """One Chromium for the module; a fresh context (no cookies) per login."""

    def __init__(self, home: Path, host_map: dict[str, str], marker: str):
        # Imported here: a missing Playwright is a setup error of this fixture only,
        # not an import error for every test module of the repository.
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as exc:
            raise RuntimeError(
                "the Python package playwright is missing: pip install it into the venv "
                "(never run `playwright install`: the tests use Debian's chromium)"
            ) from exc

        self.marker = marker
        rules = ", ".join(f"MAP {host} {address}" for host, address in host_map.items())
        self._playwright: Playwright = sync_playwright().start()
        try:
            self.browser: Browser = self._playwright.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=[
                    *CHROMIUM_ARGS,
                    f"--host-resolver-rules={rules}",
                    # Chromium ignores unknown switches; this one lets teardown find any
                    # leftover browser process of this run with pgrep.
                    f"--login-test-run={marker}",
                ],
                env={**os.environ, "HOME": str(home)},
            )
        except BaseException:
            self._playwright.stop()
            raise

    @contextmanager
    def page(self, failure_screenshot: Path | None = None) -> Iterator[Page]:
        """A page in a fresh context; on an exception, a screenshot of where it stood."""
        context: BrowserContext = self.browser.new_context()
        context.set_default_timeout(STEP_TIMEOUT_MS)
        page = context.new_page()
        try:
            yield page
        except BaseException:
            if failure_screenshot is not None:
                with contextlib.suppress(Exception):
                    page.screenshot(path=str(failure_screenshot), full_page=True, timeout=5000)
            raise
        finally:
            context.close()

    def close(self) -> list[str]:
        """Close the browser; return this run's Chromium processes that had to be killed."""
        try:
            self.browser.close()
        finally:
            self._playwright.stop()
        deadline = time.monotonic() + 10
        while (left := _pgrep_full(self.marker)) and time.monotonic() < deadline:
            time.sleep(0.2)
        # Only processes carrying this run's unique marker switch are ours to kill.
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        return left


def _pgrep_full(pattern: str) -> list[str]:
    result = subprocess.run(
        ["pgrep", "-f", "--", re.escape(pattern)], capture_output=True, text=True, check=False
    )
    return result.stdout.split()


def start_login(page: Page, hub_url: str, login_service: str, issuer: str) -> None:
    """Open the hub, press its login button, and arrive at a page of the provider."""
    page.goto(hub_url)
    page.get_by_role("button", name=f"Sign in with {login_service}").click()
    # The provider may also send the browser straight back to the hub with an error
    # (for instance when it demands PKCE): stop waiting there too, and say so.
    page.wait_for_url(lambda url: url.startswith(f"{issuer}/") or "/oauth_callback" in url)
    if not page.url.startswith(f"{issuer}/"):
        raise AssertionError(
            f"expected a page of the provider, got {page.url}:\n{_body_text(page)}"
        )


def sign_in(page: Page, user: LoginUser) -> None:
    """Fill the provider's login form and submit it."""
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in").click()


def consent(page: Page) -> list[str]:
    """Allow the access the hub asked for; return the scopes shown on the consent page."""
    # Either the consent page comes, or the login form again with an error.
    page.locator("#scopes, #error").first.wait_for()
    if page.locator("#error").count():
        raise AssertionError(f"the provider refused the sign-in:\n{_body_text(page)}")
    scopes = [s.strip() for s in page.locator("#scopes li").all_inner_texts()]
    page.get_by_role("button", name="Allow").click()
    return scopes


def _body_text(page: Page) -> str:
    try:
        return page.locator("body").inner_text(timeout=2000)[:2000]
    except Exception as exc:  # the page may be gone or still loading: report, don't mask
        return f"(page text unavailable: {exc})"


def login(page: Page, hub_url: str, login_service: str, issuer: str, user: LoginUser) -> list[str]:
    """The whole flow up to the provider's redirect back to the hub; returns the scopes."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    start_login(page, hub_url, login_service, issuer)
    sign_in(page, user)
    scopes = consent(page)
    # Back at the hub, wherever it sends the user.
    try:
        page.wait_for_url(lambda url: not url.startswith(f"{issuer}/"))
    except PlaywrightTimeoutError as exc:
        raise AssertionError(
            f"still at the provider after consent, {page.url}:\n{_body_text(page)}"
        ) from exc
    page.wait_for_load_state("load")
    return scopes


def record_navigations(page: Page) -> list[str]:
    """URLs of every main-frame navigation request of `page`, redirect hops included.

    The list is filled while the page runs, so a test can tell which URLs the browser
    was sent to even when it never rendered them (redirects).
    """
    seen: list[str] = []

    def on_request(request: Any) -> None:
        if request.is_navigation_request() and request.frame == page.main_frame:
            seen.append(request.url)

    page.on("request", on_request)
    return seen
