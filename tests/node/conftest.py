"""Fixtures for the node tests: ``cluster`` gives a ``nodeharness.Cluster`` whose
processes are all killed (and their directory removed) at teardown."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from nodeharness import Cluster


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    # A short root: a Unix socket path must fit in 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="pgn-", dir="/tmp"))
    c = Cluster(root)
    try:
        yield c
    finally:
        c.close()
        for n in c.nodes.values():
            tail = n.log_text()[-3000:]
            if tail:
                print(f"--- node {n.node_id} log tail ---\n{tail}")
        shutil.rmtree(root, ignore_errors=True)
