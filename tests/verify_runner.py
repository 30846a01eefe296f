"""`python -m sitectl verify` run as an operator runs it, for every suite that runs it.

tests/test_verify.py (an unreachable site), tests/e2e/test_verify_mounts.py (Ceph and SSH)
and tests/login/test_verify.py (provider, hub, HAProxy) all run the same subprocess; the
way it is started, its environment and the checks every run must pass live here once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.sites import PROJECT, ROOT


def write_stack(path: Path, settings: Mapping[str, Any]) -> Path:
    """A stack file at `path` holding these jupyterhub-platform settings."""
    path.write_text(yaml.safe_dump({"config": {f"{PROJECT}:{k}": v for k, v in settings.items()}}))
    return path


def verify_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without the caller's JHP_* settings (a developer's own secrets or
    token must not leak into a test), and with no Pulumi CLI on PATH: every test passes
    --outputs or wants none, so verify must never ask a real stack."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JHP_")}
    env["PATH"] = os.path.dirname(sys.executable) + ":/usr/bin:/bin"
    env.update(extra or {})
    return env


def run_verify(
    *args: str,
    env: Mapping[str, str] | None = None,
    report: Path | None = None,
    hidden: Iterable[str] = (),
    timeout: float = 60,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    """Run verify with `args` (and `--json report` when a report path is given); return
    the process and the report it wrote. Whatever it checks, a run never ends in a
    traceback and never shows a string of `hidden` (secrets the test planted)."""
    command = [sys.executable, "-m", "sitectl", "verify", *args]
    if report is not None:
        command += ["--json", str(report)]
    proc = subprocess.run(
        command,
        cwd=ROOT,
        env=verify_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    text = report.read_text() if report is not None else ""
    for secret in hidden:
        assert secret not in proc.stdout + proc.stderr + text, "a planted secret was shown"
    return proc, json.loads(text) if text else None
