"""pgraft_call keeps one connection per backend, and never reuses one after a cancel.

A fake node that, like the real one, answers any number of requests per connection
counts the connections it accepts. Its ``slow`` op answers only after two seconds: a
client that kept that connection after cancelling the call would read the late
``"stale"`` reply as the answer to its next request.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from .fakenode import FakeNodeBase, fake_node_server
from .pgharness import Server

pytestmark = pytest.mark.pg


class KeepAliveNode(FakeNodeBase):
    """Serves JSON lines, many requests per connection, until closed."""

    def handle(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    op = json.loads(line)["op"]
                    if op == "slow":
                        time.sleep(2.0)
                        reply = b'{"ok": "stale"}\n'
                    else:
                        reply = json.dumps({"ok": op}).encode() + b"\n"
                    try:
                        conn.sendall(reply)
                    except OSError:
                        return

    def drop_connections(self) -> None:
        """What a node restart looks like to the clients: every connection closes."""
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.conns.clear()


@pytest.fixture(scope="module")
def keepalive(pg_env: None) -> Iterator[tuple[Server, KeepAliveNode]]:
    with fake_node_server(KeepAliveNode) as pair:
        yield pair


def _results(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith('"')]


def test_one_connection_serves_a_session(keepalive: tuple[Server, KeepAliveNode]) -> None:
    s, node = keepalive
    before = node.accepted
    out = s.run_script("".join(f"SELECT pgraft_call('op{i}');\n" for i in range(20)))
    assert _results(out) == [f'"op{i}"' for i in range(20)]
    assert node.accepted == before + 1


def test_cancelled_call_discards_its_connection(keepalive: tuple[Server, KeepAliveNode]) -> None:
    s, node = keepalive
    before = node.accepted
    script = (
        "SELECT pgraft_call('first');\n"
        "SET statement_timeout = '200ms';\n"
        "SELECT pgraft_call('slow');\n"
        "RESET statement_timeout;\n"
        "SELECT pg_sleep(2.5);\n"  # the late reply has arrived by now
        "SELECT pgraft_call('after');\n"
    )
    out = s.run_script(script)
    assert _results(out) == ['"first"', '"after"'], out
    assert node.accepted == before + 2


def test_reconnects_after_the_node_closed_it(keepalive: tuple[Server, KeepAliveNode]) -> None:
    s, node = keepalive
    script = "SELECT pgraft_call('a');\nSELECT pg_sleep(0.5);\nSELECT pgraft_call('b');\n"
    dropper = threading.Timer(0.25, node.drop_connections)
    dropper.start()
    try:
        out = s.run_script(script)
    finally:
        dropper.join()
    assert _results(out) == ['"a"', '"b"'], out
