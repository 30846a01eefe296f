"""JHP_REQUIRE_ALL_TESTS=1 (CI) fails the run on every way a test can end up not run.

Each case is a small test module beside one passing test, run by pytest in a subprocess
with the hooks of tests/conftest.py: in CI the run fails and names the module; elsewhere
the same skip is allowed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_ALL
from tests.sites import ROOT

CASES = {
    "in the test": "import pytest\n\ndef test_x():\n    pytest.skip('not here')\n",
    "in a fixture": (
        "import pytest\n\n@pytest.fixture\ndef needs():\n    pytest.skip('not here')\n\n"
        "def test_x(needs):\n    pass\n"
    ),
    "by a marker": (
        "import pytest\n\n@pytest.mark.skipif(True, reason='not here')\ndef test_x():\n    pass\n"
    ),
    "a whole module": (
        "import pytest\n\npytest.skip('not here', allow_module_level=True)\n\n"
        "def test_x():\n    assert False\n"
    ),
    "importorskip": (
        "import pytest\n\npytest.importorskip('jhp_no_such_module')\n\n"
        "def test_x():\n    assert False\n"
    ),
    "xfail": (
        "import pytest\n\n@pytest.mark.xfail(reason='known')\ndef test_x():\n    assert False\n"
    ),
}
HOOKS = (
    "from tests.conftest import (  # noqa: F401\n"
    "    pytest_collectreport, pytest_runtest_logreport, pytest_sessionfinish,\n)\n"
)


def run_suite(tmp_path: Path, module: str, require_all: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(HOOKS)
    (tmp_path / "test_passes.py").write_text("def test_ok():\n    pass\n")
    (tmp_path / "test_case.py").write_text(module)
    env = {**os.environ, "PYTHONPATH": str(ROOT), REQUIRE_ALL: require_all}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_ci_fails_the_run_on_a_skip(tmp_path: Path, case: str) -> None:
    result = run_suite(tmp_path, CASES[case], "1")
    assert result.returncode == 1, result.stdout
    assert f"{REQUIRE_ALL}=1: 1 test(s) or module(s) skipped or xfailed" in result.stdout
    assert "test_case.py" in result.stdout.split(f"{REQUIRE_ALL}=1:", 1)[1]


@pytest.mark.parametrize("case", sorted(CASES))
def test_elsewhere_a_skip_is_allowed(tmp_path: Path, case: str) -> None:
    result = run_suite(tmp_path, CASES[case], "0")
    assert result.returncode == 0, result.stdout
    assert REQUIRE_ALL not in result.stdout
