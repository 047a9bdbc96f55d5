"""Review finding: a failing write must stop the node promptly and visibly.

The node runs under ``prlimit --fsize`` so that its SQLite WAL hits EFBIG after a few
megabytes — a full disk as the node sees it, without mounting anything. See
.coord/node-bugs.md "[node-reviewer] A failed write leaves a zombie node".
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "node"))
from nodeharness import NodeProc, wait_until

from pgraft.control.errors import ControlError

FILE_LIMIT = 4 << 20
PROCESS_EXIT_S = 15.0


class LimitedNode(NodeProc):
    def start(self) -> None:
        self.write_config()
        cmd = [sys.executable, "-m", "pgraft.node", "--config", str(self.config_path)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["prlimit", f"--fsize={FILE_LIMIT}", *cmd], stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(lambda: self.call("ping"), 15, "the node to answer ping")


@pytest.fixture
def node() -> Iterator[LimitedNode]:
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit(1) is not installed")
    root = Path(tempfile.mkdtemp(prefix="pgr-", dir="/tmp"))
    n = LimitedNode(root, 1, "c")
    try:
        yield n
    finally:
        n.kill()
        print(n.log_text()[-2000:])
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_failed_write_stops_node_and_answers_58030(node: LimitedNode) -> None:
    node.start()
    assert node.call("init") is True
    failure: BaseException | None = None
    for i in range(5000):  # bounded: the 4 MB file limit is reached after a few hundred
        try:
            node.call("log_append", timeout=25.0, term=0, data=f"{i:06d}" + "x" * 4000)
        except (ControlError, OSError) as exc:
            failure = exc
            break
    assert failure is not None, "the file size limit was never reached"
    # The request whose write failed is answered with the storage error (not a hang
    # until its own timeout_ms, not 57014) ...
    assert isinstance(failure, ControlError) and failure.code == "58030", repr(failure)
    # ... and the node exits non-zero soon, saying which file failed.
    assert node.proc is not None
    code = node.proc.wait(PROCESS_EXIT_S)
    assert code != 0
    assert "raft.db" in node.log_text()
