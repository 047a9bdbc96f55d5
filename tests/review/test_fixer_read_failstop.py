"""Damage found while serving a read stops the node: the reader gets 58030 (storage
failure), not XX000, and the process exits non-zero naming the file, instead of
serving on with a store it cannot trust (see .coord/node-bugs.md, [node-reviewer]
"corruption found while serving a read")."""

from __future__ import annotations

import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "node"))
from nodeharness import NodeProc, append

from pgraft.control.errors import ControlError


@pytest.fixture
def node() -> Iterator[NodeProc]:
    root = Path(tempfile.mkdtemp(prefix="pgr-", dir="/tmp"))
    n = NodeProc(root, 1, "c")
    try:
        yield n
    finally:
        n.kill()
        shutil.rmtree(root, ignore_errors=True)


def test_corrupt_row_found_by_a_read_stops_the_node(node: NodeProc) -> None:
    node.start()
    assert node.call("init") is True
    index = append(node, "precious")
    assert node.stop() == 0
    conn = sqlite3.connect(Path(node.config["data_dir"]) / "raft.db")
    conn.execute("UPDATE sm_log SET data = x'4242' WHERE idx = ?", (index,))
    conn.commit()
    conn.close()

    node.start()  # the open-time checks cover the raft log, not every user record
    with pytest.raises(ControlError) as failure:
        node.call("log_read", from_index=1, to_index=index, limit=10)
    assert failure.value.code == "58030", failure.value
    assert node.proc is not None
    assert node.proc.wait(15) != 0
    assert "raft.db" in node.log_text()
