"""Clients of the control API: a blocking one (CLI, tests) and an asyncio one (bench).

Theory of operation
-------------------
Both send ``{"op", "args"}`` lines and read one reply line per request. ``call`` returns
the ``ok`` value or raises ``ControlError`` with the server's code; a connection or
protocol failure raises ``OSError``. ``AsyncControlClient.pipeline`` writes many
requests before reading the replies, which arrive in order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pgraft.control.errors import ControlError
from pgraft.control.protocol import encode_request
from pgraft.control.unixpath import connect_unix, connect_unix_async


def decode_reply(line: bytes) -> object:
    """The ``ok`` value of a reply line. Raises ``ControlError`` or ``OSError``."""
    if not line:
        raise ConnectionResetError("control socket closed before replying")
    reply = json.loads(line)
    if not isinstance(reply, dict):
        raise OSError(f"malformed reply: {line[:200]!r}")
    if "error" in reply:
        err = reply["error"]
        raise ControlError(str(err.get("code")), str(err.get("message")))
    return reply.get("ok")


class ControlClient:
    """A blocking connection to a node's control socket."""

    def __init__(self, path: str | Path, timeout: float | None = 30.0) -> None:
        self._sock = connect_unix(Path(path), timeout)
        self._file = self._sock.makefile("rb")

    def call(self, op: str, **args: Any) -> Any:
        self._sock.sendall(encode_request(op, args))
        return decode_reply(self._file.readline())

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncControlClient:
    """An asyncio connection to a node's control socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(cls, path: str | Path) -> AsyncControlClient:
        sock = await connect_unix_async(Path(path))
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=16 << 20)
        return cls(reader, writer)

    async def call(self, op: str, **args: Any) -> Any:
        self._writer.write(encode_request(op, args))
        await self._writer.drain()
        return decode_reply(await self._reader.readline())

    async def send(self, requests: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Write requests without waiting for their replies (see ``receive``)."""
        self._writer.write(b"".join(encode_request(op, args) for op, args in requests))
        await self._writer.drain()

    async def send_raw(self, data: bytes) -> None:
        """Write already encoded request lines (``encode_request``)."""
        self._writer.write(data)
        await self._writer.drain()

    async def receive(self) -> object:
        """The next reply's value; raises ``ControlError`` for an error reply."""
        return decode_reply(await self._reader.readline())

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()
