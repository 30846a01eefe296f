"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sandbox import Sandbox


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    """A script sandbox in the test's temporary directory, unlocked again afterwards (the
    unmount script locks an unused mount point with chattr +i)."""
    sandbox = Sandbox(tmp_path)
    yield sandbox
    sandbox.unlock()
