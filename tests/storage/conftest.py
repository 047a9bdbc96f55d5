"""Fixtures for the storage tests: real files under ``tmp_path``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from storage_helpers import open_store

from pgraft.storage import DurableStorage


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DurableStorage]:
    st = open_store(tmp_path / "data")
    yield st
    st.close()
