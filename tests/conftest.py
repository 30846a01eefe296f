"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sandbox import SANDBOX_BASE, Sandbox

# No test reaches the real chart repository: a plan that a test runs, finding no chart
# package at hand, asks a closed port on loopback and skips its render, saying so.
os.environ["JHP_CHART_REPOSITORY"] = "http://127.0.0.1:9/"


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    """A script sandbox, unlocked again afterwards (the unmount script locks an unused
    mount point with chattr +i) and removed.

    Not in the test's temporary directory: the mount script refuses a mount path under
    /tmp (cleared at boot, writable by everyone), so the sandbox's mount points, which are
    real directories of this machine, live under SANDBOX_BASE.
    """
    SANDBOX_BASE.mkdir(mode=0o755, parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"{tmp_path.name}-", dir=SANDBOX_BASE))
    sandbox = Sandbox(root)
    yield sandbox
    sandbox.unlock()
    shutil.rmtree(root, ignore_errors=True)


# -- CI refuses skips --------------------------------------------------------------------
# The e2e, login and HAProxy tests skip, with their reason, where this machine cannot run
# them (no root, no apt). CI can, so a skip there would hide a suite that never ran:
# with JHP_REQUIRE_ALL_TESTS=1 (set by .ci/run) any skipped or xfailed test fails the
# session. A skip can come from the test, a fixture or a marker (each test reports it), or
# from a whole module at import (pytest.importorskip, pytest.skip(allow_module_level=True)):
# that one is reported by the module's collection only, with no test at all. An xfailed
# test is a failure the run was told to expect: in CI it hides one just as well.

REQUIRE_ALL = "JHP_REQUIRE_ALL_TESTS"
_skipped: list[tuple[str, str]] = []


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    wasxfail = getattr(report, "wasxfail", None)
    if wasxfail is not None:
        return f"xfailed: {wasxfail}" if wasxfail else "xfailed"
    return report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append((report.nodeid, _reason(report)))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:
        _skipped.append((report.nodeid, _reason(report)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get(REQUIRE_ALL) == "1" and _skipped:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = [
            f"{REQUIRE_ALL}=1: {len(_skipped)} test(s) or module(s) skipped or xfailed, "
            "which CI does not allow:"
        ]
        lines += [f"  {node}: {reason}" for node, reason in _skipped]
        if reporter is not None:
            reporter.write_line("\n".join(lines), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
