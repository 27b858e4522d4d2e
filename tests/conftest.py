"""Shared fixtures: every test that touches data gets its own MESH_DATA_DIR."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lakehouse.config import get_settings, reset_settings


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, empty data directory that the platform uses for the test's duration."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("MESH_DATA_DIR", str(root))
    reset_settings()
    assert get_settings().data_dir == root
    yield root
    reset_settings()


@pytest.fixture
def api_key(data_dir: Path) -> Callable[[str], str]:
    """Issue a real API key for an account of domains/access.yml in the test's data dir."""
    from lakehouse.access import create_key

    return create_key
