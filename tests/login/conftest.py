"""Fixtures of the login tests: prerequisites, the chain, the browser, failure logs.

The chain (CA, identity provider, browser) is set up once per test module; site
variants (hub + HAProxy) are switched by `LoginChain.open_site()`. The test module lists
its variants in a module-level `SITES`, because the provider registers one client per
variant when it starts.

Prerequisites: root (HAProxy binds 443), chromium, haproxy and certutil (Debian
packages chromium, haproxy, libnss3-tools, installed here when missing and possible),
node and npm (the provider and configurable-http-proxy come from
tests/login/idp/package-lock.json through `npm ci`), and the Python package playwright.
Only a missing root, or missing packages that cannot be installed, skip the tests; a
chain that does not start is an error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from .browser import HeadlessChromium, make_nss_home
from .chain import HUB_HOST, IDP_DIR, LoginChain, SiteSpec
from .processes import ChainError

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = REPO_ROOT / "build" / "test-artifacts"

# Tool on PATH -> Debian package that provides it.
DEBIAN_TOOLS = {"chromium": "chromium", "haproxy": "haproxy", "certutil": "libnss3-tools"}
APT_TIMEOUT = 900

# Chains alive in this session, so a failure report can show their processes' logs.
_ACTIVE_CHAINS: list[LoginChain] = []


def _apt_install(packages: list[str]) -> str:
    """Try to install Debian packages; return "" on success, else what went wrong."""
    if shutil.which("apt-get") is None:
        return "apt-get not found"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    result = subprocess.run(
        install, capture_output=True, text=True, env=env, timeout=APT_TIMEOUT, check=False
    )
    if result.returncode != 0:
        # Package lists may be missing or stale on a fresh machine.
        subprocess.run(
            ["apt-get", "update", "-q"],
            capture_output=True,
            env=env,
            timeout=APT_TIMEOUT,
            check=False,
        )
        result = subprocess.run(
            install, capture_output=True, text=True, env=env, timeout=APT_TIMEOUT, check=False
        )
    if result.returncode != 0:
        return (result.stdout + result.stderr)[-2000:]
    return ""


def _require_prerequisites() -> None:
    if os.geteuid() != 0:
        pytest.skip("login tests need root: HAProxy binds port 443 for the hub's https URL")
    missing = [tool for tool in DEBIAN_TOOLS if shutil.which(tool) is None]
    if missing:
        packages = [DEBIAN_TOOLS[t] for t in missing]
        problem = _apt_install(packages)
        still = [tool for tool in missing if shutil.which(tool) is None]
        if still:
            pytest.skip(f"missing {', '.join(still)} and cannot install {packages}: {problem}")
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.skip(f"login tests need {tool} (Node 20) for oidc-provider and the proxy")
    _npm_ci_if_needed()


def _npm_ci_if_needed() -> None:
    """Install tests/login/idp/node_modules from package-lock.json unless up to date."""
    lock = IDP_DIR / "package-lock.json"
    # npm writes this file after a successful install into node_modules.
    installed = IDP_DIR / "node_modules" / ".package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    result = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"],
        cwd=IDP_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise ChainError(f"npm ci in {IDP_DIR} failed:\n{result.stdout}{result.stderr}")


# Both chart generations: 3.1.0 (JupyterHub 4.0.2, oauthenticator 16.1.0, proxy 4.6.1) and
# 4.4.0 (JupyterHub 5.5.0, oauthenticator 17.4.0, proxy 5.2.0). A module whose cases exist
# on one generation only overrides this fixture.
LOGIN_CHART_VERSIONS = ("3.1.0", "4.4.0")


@pytest.fixture(scope="module", params=LOGIN_CHART_VERSIONS)
def chart_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def login_chain(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, chart_version: str
) -> Iterator[LoginChain]:
    """The identity provider, started once with a client per site variant of the module."""
    _require_prerequisites()
    sites: list[SiteSpec] = request.module.SITES
    chain = LoginChain(
        tmp_path_factory.mktemp(f"login-chain-{chart_version}"), sites, chart_version
    )
    _ACTIVE_CHAINS.append(chain)
    try:
        chain.start_idp()
        yield chain
    finally:
        leftovers = chain.close()
        _ACTIVE_CHAINS.remove(chain)
        if leftovers:
            pytest.fail(f"processes left running after teardown: {leftovers}")


@pytest.fixture(scope="module")
def chromium(
    login_chain: LoginChain, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HeadlessChromium]:
    """Chromium trusting the test CA, with the hub host mapped to 127.0.0.1."""
    home = tmp_path_factory.mktemp("chromium-home")
    make_nss_home(home, login_chain.ca.cert_path)
    browser = HeadlessChromium(home, {HUB_HOST: "127.0.0.1"}, marker=uuid.uuid4().hex)
    try:
        yield browser
    finally:
        left = browser.close()
        if left:
            pytest.fail(f"chromium processes left running after teardown: {left}")


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_DIR


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failure, add every chain process with the tail of its log to the report."""
    report = yield
    if report.failed:
        for chain in _ACTIVE_CHAINS:
            report.sections.append(
                (f"login chain processes ({call.when})", chain.registry.report())
            )
    return report
