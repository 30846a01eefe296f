"""Each chart version's hub libraries, in an environment of their own: `.venv-hub/<version>`.

A chart's hub image runs fixed versions of jupyterhub, oauthenticator and kubespawner;
chart 3.1.0 and 4.4.0 run different major versions of all three, which cannot share one
Python environment. `make hub-venvs` (part of `make test`) builds one environment per
file in `tests/hub_libraries/` (the pins, taken from that chart's hub image's frozen
requirements, plus jupyter-server for a server the login tests spawn locally); tests run
the hub's code there, in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from components.hub_values import deep_merge
from tests.sites import chart_defaults, chart_package

ROOT = Path(__file__).resolve().parent.parent
PINS_DIR = ROOT / "tests" / "hub_libraries"
VENVS_DIR = ROOT / ".venv-hub"
HUBLOAD = ROOT / "tests" / "hubload.py"
# A batch of cases imports the hub's libraries once; generous for a loaded 2-core machine.
LOAD_TIMEOUT = 300


def hub_versions() -> list[str]:
    """The chart versions that have pinned hub libraries."""
    return sorted(p.stem for p in PINS_DIR.glob("*.txt"))


def pins(version: str) -> dict[str, str]:
    """The pinned distributions of a version: {name: version}."""
    out = {}
    for raw in (PINS_DIR / f"{version}.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            out[name.strip().lower()] = pinned.strip()
    return out


def hub_python(version: str) -> Path:
    """The Python of a version's hub environment; skips the test when it is not built."""
    python = VENVS_DIR / version / "bin" / "python"
    stamp = VENVS_DIR / version / ".installed"
    if not python.exists() or not stamp.exists():
        pytest.skip(
            f"the hub libraries of chart {version} are not installed: run `make hub-venvs` "
            f"(builds {VENVS_DIR.relative_to(ROOT)}/{version} from "
            f"tests/hub_libraries/{version}.txt)"
        )
    return python


def hub_bin(version: str, name: str) -> Path:
    """A console script of a version's hub environment (jupyterhub, jupyterhub-singleuser)."""
    return hub_python(version).parent / name


def chart_files(version: str) -> dict[str, Any]:
    """What tests/hubload.py runs of a chart: its hub's jupyterhub_config.py."""
    with tarfile.open(chart_package(version)) as package:
        member = package.extractfile("jupyterhub/files/hub/jupyterhub_config.py")
        assert member is not None, f"chart {version} has no files/hub/jupyterhub_config.py"
        config = member.read().decode()
    return {"version": version, "config": config}


def load_in_hub(version: str, cases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Run tests/hubload.py in the version's environment on these cases; its reports.

    Each case's values reach the hub as Helm hands them to it: over the chart's defaults,
    merged here once with the program's own Helm merge."""
    python = hub_python(version)
    defaults = chart_defaults(version)
    merged = {
        name: {**case, "values": deep_merge(defaults, case["values"])}
        for name, case in cases.items()
    }
    request = {"chart": chart_files(version), "cases": merged}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OAUTH", "JUPYTERHUB_"))}
    result = subprocess.run(
        [str(python), str(HUBLOAD)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=LOAD_TIMEOUT,
        env=env,
        cwd=ROOT,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"hubload in .venv-hub/{version} failed ({result.returncode}):\n{result.stderr[-6000:]}"
        )
    reports: dict[str, Any] = json.loads(result.stdout)
    return reports
