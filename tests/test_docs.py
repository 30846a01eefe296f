"""The operator's documentation: the config reference is the model's."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import BaseModel

from components import config
from components.config import PROJECT_DIR
from sitectl import configref


def _leaf_keys(model: type[BaseModel], prefix: str) -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        keys.append(key)
        base, _, _ = configref._unwrap(field.annotation)
        if isinstance(base, type) and issubclass(base, BaseModel):
            keys += _leaf_keys(base, f"{key}.")
    return keys


def test_the_config_reference_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sitectl", "config-reference", "--check"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_reference_names_every_key_of_the_model() -> None:
    text = configref.render()
    for key in _leaf_keys(config.SiteConfig, ""):
        assert f"`{key}`" in text, key
    assert "| `nodes.hosts[].hostKey` |" in text


def test_a_changed_model_makes_the_reference_stale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    field = config.ShareSettings.model_fields["size_gb"]
    monkeypatch.setattr(field, "description", "share size in GiB")
    args = configref.argparse.Namespace(check=True, out=configref.REFERENCE)
    assert configref.run(args) == 1


def test_what_a_key_accepts_is_the_error_it_gives() -> None:
    text = configref.render()
    row = next(line for line in text.splitlines() if line.startswith("| `hub.nodePort` |"))
    assert "a whole number in 30000-32767" in row
    row = next(line for line in text.splitlines() if line.startswith("| `hub.oauth.tokenUrl` |"))
    assert "an https:// URL with a host name" in row
