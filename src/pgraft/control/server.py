"""The control server: an asyncio Unix-socket server speaking JSON lines.

Theory of operation
-------------------
Each connection has a reader loop and a writer loop joined by a FIFO of tasks. The
reader parses a line, starts the handler for it as a task right away (so a client may
pipeline many requests, e.g. thousands of ``log_append`` calls that commit together)
and queues the task; the writer awaits the tasks in arrival order and writes their
replies, so replies come back in request order. A semaphore caps the requests in flight
per connection: when it is exhausted the reader stops reading and the socket's buffer
pushes back on the client; so does a connection whose computed but unwritten replies
exceed ``MAX_UNSENT_BYTES`` (a client that does not read); and the reader yields
every ``YIELD_EVERY`` requests so a burst cannot monopolise the event loop.

The socket file is created under a 0177 umask (mode 0600): only the owner, the
PostgreSQL OS user, may talk to the node. A stale socket file left by a crashed node is
removed before binding; any other kind of file at that path is an error. Paths longer
than ``sun_path`` work too (``pgraft.control.unixpath``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from pgraft.control.errors import INTERNAL, INVALID_PARAMETER, ControlError
from pgraft.control.protocol import Args, encode_error, encode_reply, parse_request
from pgraft.control.unixpath import bind_unix

Handler = Callable[[str, Args], Awaitable[object]]
"""Runs one request; returns the JSON-able result or raises ``ControlError``."""

log = logging.getLogger("pgraft.control")

DEFAULT_MAX_INFLIGHT: Final = 16384
DEFAULT_MAX_LINE: Final = 8 << 20
YIELD_EVERY: Final = 64
"""Requests read from one connection before the reader yields to the event loop: a
pipelined burst of 10,000 requests read in one go would run 10,000 handlers before
the Raft driver's next turn, delaying heartbeats past an election timeout."""
CLOSE_GRACE_S: Final = 1.0
MAX_UNSENT_BYTES: Final = 16 << 20


class ControlServer:
    def __init__(
        self,
        path: Path,
        handler: Handler,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        max_line: int = DEFAULT_MAX_LINE,
    ) -> None:
        self.path = path
        self._handler = handler
        self._max_inflight = max_inflight
        self._max_line = max_line
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind the socket. Raises ``OSError`` (e.g. a non-socket file is in the way)."""
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                raise FileExistsError(f"{self.path} exists and is not a socket")
            self.path.unlink()
        old = os.umask(0o177)
        try:
            sock = bind_unix(self.path)
        finally:
            os.umask(old)
        self._server = await asyncio.start_unix_server(
            self._on_connect, sock=sock, limit=self._max_line
        )

    async def close(self) -> None:
        """Stop accepting, stop reading, give replies already under way
        ``CLOSE_GRACE_S`` to go out, then cancel whatever still runs (a handler waiting
        for a log that no longer moves must not hold the process up)."""
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            if self._connections:
                await asyncio.wait(list(self._connections), timeout=CLOSE_GRACE_S)
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        slots = asyncio.Semaphore(self._max_inflight)
        replies = _ReplyQueue()
        unsent = _Unsent()
        writer_task = asyncio.create_task(self._write_replies(replies, writer, slots, unsent))
        try:
            read = 0
            while True:
                await slots.acquire()
                read += 1
                if read % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # a burst must not stall the Raft driver
                await unsent.below_limit()  # a client that does not read its replies
                try:
                    line = await reader.readline()
                except ValueError:  # line longer than the limit
                    err = encode_error(ControlError(INVALID_PARAMETER, "request line too long"))
                    unsent.add(len(err))
                    replies.put(asyncio.create_task(_constant(err)))
                    break
                except ConnectionError:
                    break
                if not line:
                    break
                if not line.strip():
                    slots.release()
                    continue
                replies.put(asyncio.create_task(self._run(line, unsent)))
        finally:
            replies.put(None)
            with contextlib.suppress(ConnectionError):
                await writer_task

    async def _write_replies(
        self,
        replies: _ReplyQueue,
        writer: asyncio.StreamWriter,
        slots: asyncio.Semaphore,
        unsent: _Unsent,
    ) -> None:
        """Write replies in request order; replies already computed behind the one
        awaited go out in the same write (one syscall for a pipelined burst)."""
        try:
            while (head := await replies.get()) is not None:
                out = [await head]
                slots.release()
                while (task := replies.pop_done()) is not None:
                    out.append(task.result())
                    slots.release()
                data = b"".join(out)
                writer.write(data)
                await writer.drain()
                unsent.done(len(data))
        finally:
            unsent.close()  # the reader must not wait for a writer that is gone

    async def _run(self, line: bytes, unsent: _Unsent) -> bytes:
        try:
            op, args = parse_request(line)
            result = await self._handler(op, args)
            reply = encode_reply(result)
        except ControlError as err:
            reply = encode_error(err)
        except Exception as exc:
            log.exception("control request failed unexpectedly")
            reply = encode_error(ControlError(INTERNAL, f"internal error: {exc!r}"))
        unsent.add(len(reply))
        return reply


async def _constant(data: bytes) -> bytes:
    return data


class _Unsent:
    """Bytes of one connection's replies computed but not yet taken by the socket.
    Above ``MAX_UNSENT_BYTES`` the reader stops reading requests until the writer has
    drained below it, so a client that pipelines requests without reading the replies
    holds at most that much (plus the replies of the ``YIELD_EVERY`` requests read in
    one go) instead of up to ``max_inflight`` replies."""

    def __init__(self) -> None:
        self.bytes = 0
        self._closed = False
        self._drained = asyncio.Event()

    def add(self, n: int) -> None:
        self.bytes += n

    def done(self, n: int) -> None:
        self.bytes -= n
        if self.bytes <= MAX_UNSENT_BYTES:
            self._drained.set()

    def close(self) -> None:
        self._closed = True
        self._drained.set()

    async def below_limit(self) -> None:
        while self.bytes > MAX_UNSENT_BYTES and not self._closed:
            self._drained.clear()
            await self._drained.wait()


class _ReplyQueue:
    """FIFO of reply tasks (``None`` ends the connection) that can also hand out its
    head without waiting when that task has already finished."""

    def __init__(self) -> None:
        self._items: deque[asyncio.Task[bytes] | None] = deque()
        self._nonempty = asyncio.Event()

    def put(self, item: asyncio.Task[bytes] | None) -> None:
        self._items.append(item)
        self._nonempty.set()

    async def get(self) -> asyncio.Task[bytes] | None:
        while not self._items:
            self._nonempty.clear()
            await self._nonempty.wait()
        return self._items.popleft()

    def pop_done(self) -> asyncio.Task[bytes] | None:
        if self._items and self._items[0] is not None and self._items[0].done():
            return self._items.popleft()
        return None
