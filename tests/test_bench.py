"""`make bench` runs: its quick form, on small sites, writes every section of the report."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REQUIRE_ALL
from tests.sites import ROOT


def test_quick_bench_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    result = subprocess.run(
        [sys.executable, "-m", "tools.bench", "--quick", "--runs", "1", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    for heading in (
        "## The plan against the import floor",
        "## The chart render",
        "## The plan as a site grows",
        "## The SDK alone",
        "## Where the time goes",
        "## The deploy graph",
    ):
        assert heading in text, heading
    assert re.search(r"Plan / floor: \*\*\d+\.\d\dx\*\*", text)
    # Measured where Helm and the chart are at hand (always in CI); else it says why not.
    measured = re.search(r"The render adds: \*\*-?\d+\.\d\d s\*\*", text)
    if os.environ.get(REQUIRE_ALL) == "1":
        assert measured, text
    else:
        assert measured or "Not measured: the chart cannot be rendered here (" in text
    assert re.search(r"SDK cost per node: -?\d+\.\d\d ms; ours: -?\d+\.\d\d ms", text)
    assert "| our code (components, sitectl, policy, __main__.py) |" in text
    # The longest chain is the same at every size.
    chains = re.findall(r"^\| (\d+) \| \d+ \| (\d+) \| \d+ \|$", text, re.MULTILINE)
    assert [n for n, _ in chains] == ["3", "6", "12"]
    assert len({chain for _, chain in chains}) == 1
