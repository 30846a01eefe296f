"""Test sites: the espsrc stack file as data, changed key by key, run under mocks.

Tests describe a site as "espsrc, with these keys changed", in the stack file's own
dotted key names (`hub.nodePort`), so a failing test reads like the config it used.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from components.config import decode_config_value, required_secret_keys
from components.hub_values import deep_merge  # noqa: F401 (re-exported for tests)
from sitectl.charts import ChartUnavailableError, chart_values_and_schema, resolve_chart
from sitectl.mockrun import ProgramRun, run_program
from sitectl.stackfile import load_stack_file

PROJECT = "jupyterhub-platform"
ROOT = Path(__file__).resolve().parent.parent

# Planted secret values: tests grep every output for them.
OAUTH_SECRET = "planted-oauth-client-secret-5d1c9b"
SSH_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "cGxhbnRlZC1zc2gta2V5LWZvci10ZXN0cy1vbmx5LTc3YTQ=\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
SECRETS = {"oauthClientSecret": OAUTH_SECRET, "sshPrivateKey": SSH_KEY}

_DELETE = object()
DELETE: Any = _DELETE
"""Use as a value in `changes` to remove the key."""


def espsrc() -> dict[str, Any]:
    """The espsrc stack's jupyterhub-platform settings, as Python data, keyed without prefix."""
    return stack_settings("espsrc")


def stack_settings(stack: str) -> dict[str, Any]:
    """A stack file's jupyterhub-platform settings, as Python data, keyed without prefix."""
    stack_file = load_stack_file(ROOT / f"Pulumi.{stack}.yaml", PROJECT)
    out: dict[str, Any] = {}
    for key, text in stack_file.config.items():
        if key.startswith(f"{PROJECT}:"):
            out[key.split(":", 1)[1]] = decode_config_value(text)
    return out


def split_path(path: str) -> list[str | int]:
    """A dotted key (`nodes.hosts[0].address`) as its parts: names and list indexes."""
    parts: list[str | int] = []
    for token in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        parts.append(int(token[1:-1]) if token.startswith("[") else token)
    return parts


def changed(site: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of `site` with each dotted key (`nodes.hosts[0].address`) set or deleted."""
    out = copy.deepcopy(site)
    for path, value in changes.items():
        parts = split_path(path)
        node: Any = out
        for part in parts[:-1]:
            if isinstance(part, str) and part not in node:
                node[part] = {}
            node = node[part]
        if value is _DELETE:
            del node[parts[-1]]
        else:
            node[parts[-1]] = copy.deepcopy(value)
    return out


def site(**changes: Any) -> dict[str, Any]:
    """espsrc with changes given as keyword arguments (`site(**{"hub.nodePort": 80})`)."""
    return changed(espsrc(), changes)


def as_config(
    settings: dict[str, Any], secrets: dict[str, str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """The config map and secret keys the language host would pass for these settings."""
    if secrets is None:  # the secrets this site asks for (with Vault, only the SSH key)
        secrets = {k: SECRETS[k] for k in required_secret_keys(settings)}
    config = {
        f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in settings.items()
    }
    for key, value in secrets.items():
        config[f"{PROJECT}:{key}"] = value
    return config, [f"{PROJECT}:{k}" for k in secrets]


def run(
    settings: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
    *,
    preview: bool = False,
) -> ProgramRun:
    config, secret_keys = as_config(espsrc() if settings is None else settings, secrets)
    return run_program(config, secret_keys, stack="espsrc", preview=preview)


def with_hosts(count: int) -> dict[str, Any]:
    """espsrc with `count` generated nodes."""
    hosts = [
        {"name": f"node-{i:04d}", "address": f"10.{i // 65536}.{i // 256 % 256}.{i % 256 + 1}"}
        for i in range(count)
    ]
    return site(**{"nodes.hosts": hosts})


@functools.cache
def chart_package(version: str) -> Path:
    """The chart package of a version, from $JHP_CHART_DIR or the user's cache.

    Tests never download (no test reaches the real chart repository): without a package
    at hand the test skips, saying where to put one. `make plan` fills the cache.
    """
    try:
        return resolve_chart(version, download_from=None)
    except ChartUnavailableError as err:
        pytest.skip(
            f"{err} (set JHP_CHART_DIR to a folder of chart packages, or put the package "
            "in that cache)"
        )


def chart_defaults(version: str = "3.1.0") -> dict[str, Any]:
    return chart_values_and_schema(chart_package(version))[0]


def chart_schema(version: str = "3.1.0") -> dict[str, Any]:
    return chart_values_and_schema(chart_package(version))[1]
