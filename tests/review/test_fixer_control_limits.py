"""Control-API limits added for the reviewer's findings (.coord/node-bugs.md): a
client that pipelines requests without reading the replies is stopped being read
(bounded memory) yet gets every reply once it reads; ``log_read`` replies are capped
in bytes; the last voter cannot be removed (55000 at once, not a timeout); a lone
surrogate or absurdly nested JSON is a 22023, not an internal error."""

from __future__ import annotations

import contextlib
import json
import select
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "node"))
from nodeharness import NodeProc, append

from pgraft.control.errors import ControlError
from pgraft.control.server import MAX_UNSENT_BYTES
from pgraft.node.wiring import LOG_READ_MAX_BYTES

ENTRY = 256 << 10
PAD = 256 << 10
REQUESTS = 200


@pytest.fixture(scope="module")
def node() -> Iterator[NodeProc]:
    root = Path(tempfile.mkdtemp(prefix="pgr-", dir="/tmp"))
    n = NodeProc(root, 1, "c")
    try:
        n.start()
        assert n.call("init") is True
        for i in range(20):  # 5 MiB of user log
            append(n, f"{i:04d}" + "x" * (ENTRY - 4))
        yield n
    finally:
        n.kill()
        shutil.rmtree(root, ignore_errors=True)


def _connect(n: NodeProc) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(n.socket)
    return s


def test_log_read_reply_is_capped_and_pages_on(node: NodeProc) -> None:
    rows = node.call("log_read", from_index=1, to_index=10**9, limit=1000)
    assert 1 <= len(rows) < 20
    assert sum(len(r["data"]) for r in rows) <= LOG_READ_MAX_BYTES
    rest = node.call("log_read", from_index=rows[-1]["index"] + 1, to_index=10**9, limit=1000)
    assert rest and rest[0]["index"] > rows[-1]["index"]


def test_a_client_that_does_not_read_is_no_longer_read(node: NodeProc) -> None:
    args = {"from_index": 1, "to_index": 10**9, "limit": 4}
    request = json.dumps({"op": "log_read", "args": args})
    line = (request + " " * (PAD - len(request) - 1) + "\n").encode()
    # 200 requests of 256 KiB whose replies are 1 MiB each: far more than the server
    # buffers (its stream reader, MAX_UNSENT_BYTES of replies, one burst beyond).
    assert REQUESTS * 4 * ENTRY > 8 * MAX_UNSENT_BYTES
    wanted = REQUESTS
    s = _connect(node)
    try:
        s.setblocking(False)
        sent = 0
        stalled_since: float | None = None
        deadline = time.monotonic() + 30
        while sent < wanted * len(line) and time.monotonic() < deadline:
            try:
                sent += s.send(line[sent % len(line) :])
                stalled_since = None
            except BlockingIOError:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 2.0:
                    break  # the server stopped reading us
                time.sleep(0.01)
        assert sent < wanted * len(line), "the server kept reading a client that never reads"
        # Once the client reads, every request is answered, in order.
        complete = -(-sent // len(line))  # the last one may be partly sent: finish it
        rest = line[sent % len(line) :] if sent % len(line) else b""
        chunks: list[bytes] = []
        lines = 0
        deadline = time.monotonic() + 60
        while lines < complete and time.monotonic() < deadline:
            _r, w, _x = select.select([s], [s] if rest else [], [], 1.0)
            if w:
                rest = rest[s.send(rest) :]
            with contextlib.suppress(BlockingIOError):
                chunk = s.recv(1 << 20)
                assert chunk, "connection closed early"
                chunks.append(chunk)
                lines += chunk.count(b"\n")
        replies = [json.loads(x) for x in b"".join(chunks).split(b"\n")[:complete]]
        assert len(replies) == complete
        assert all(len(r["ok"]) == 4 for r in replies)
    finally:
        s.close()
    assert node.call("ping")


def test_last_voter_cannot_be_removed(node: NodeProc) -> None:
    started = time.monotonic()
    with pytest.raises(ControlError) as refused:
        node.call("remove_node", node_id=1, timeout_ms=20000)
    assert refused.value.code == "55000"
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "line",
    [
        b'{"op": "log_append", "args": {"term": 0, "data": "\\ud800"}}\n',
        b'{"op": "kv_put", "args": {"key": "\\udfff", "value": "v"}}\n',
        b"[" * 100_000 + b"\n",
    ],
)
def test_unencodable_or_deep_json_is_invalid_parameter(node: NodeProc, line: bytes) -> None:
    s = _connect(node)
    try:
        s.settimeout(30)
        s.sendall(line)
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 16)
            assert chunk
            buf += chunk
    finally:
        s.close()
    reply = json.loads(buf)
    assert reply["error"]["code"] == "22023", reply
