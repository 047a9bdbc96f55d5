"""Helpers shared by the storage tests."""

from __future__ import annotations

from pathlib import Path

from pgraft.core.types import Entry, EntryType
from pgraft.storage import DurableStorage


def ents(first: int, last: int, term: int, tag: str = "") -> list[Entry]:
    return [
        Entry(term, i, EntryType.NORMAL, f"entry-{i}-{term}{tag}".encode())
        for i in range(first, last + 1)
    ]


def open_store(path: Path, **kw: int) -> DurableStorage:
    return DurableStorage.open(path, node_id=1, cluster_name="c1", **kw)
