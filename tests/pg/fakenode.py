"""A Unix-socket stand-in for the pgraft node, for testing the C client alone.

``FakeNodeBase`` listens at a server's ``pgraft.sock`` and hands every accepted
connection to ``handle`` on its own thread; subclasses script the replies.
``fake_node_server`` starts a PostgreSQL server whose supervisor is disabled
(``worker_enabled = off``), so the only thing answering on that socket is the fake.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from .pgharness import Cluster, Server


class FakeNodeBase:
    """Accepts connections on ``path`` until closed; ``handle`` serves one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        os.chmod(path, 0o777)
        self.sock.listen(64)
        self.accepted = 0
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(conn)
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError  # abstract: each fake scripts its own replies

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)


N = TypeVar("N", bound=FakeNodeBase)


@contextmanager
def fake_node_server(make: Callable[[Path], N]) -> Iterator[tuple[Server, N]]:
    """One PostgreSQL server with the extension created and ``make``'s fake node."""
    cluster = Cluster()
    try:
        s = cluster.add(1, settings={"pgraft.worker_enabled": "off"})
        s.psql("CREATE EXTENSION pgraft")
        node = make(s.data / "pgraft.sock")
        try:
            yield s, node
        finally:
            node.close()
    finally:
        cluster.close()
