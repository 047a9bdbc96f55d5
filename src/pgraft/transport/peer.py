"""The outbound side of one peer: a bounded queue, a dialer and a writer.

Theory of operation
-------------------
``enqueue`` is synchronous and never blocks: messages go into a bounded deque; when it
is full the *oldest* message is dropped and counted (Raft tolerates loss: a dropped
AppendEntries is retried, a dropped heartbeat is followed by the next one).

One task per peer keeps a connection up: dial (TCP, TLS if configured), run the
handshake, then loop "wait for messages, take *everything* queued, write it as one frame
(or a few, if it exceeds the maximum frame size), wait while the socket buffer is
full". While the connection is up and its buffer is below the high-water mark,
``enqueue`` itself writes (the whole queue, in order) without waiting for the task: a
leader's AppendEntries then reaches the socket before the leader starts its own fsync,
and no message pays for a task switch.

Outgoing connections come from the node's own listen address when that is a specific
IP, so peers (and firewalls) see the node's address as the source. When the connection
fails the task sleeps with exponential backoff and full jitter (reset after every
successful handshake) and dials again. Messages queued while disconnected stay queued
(bounded); those in a frame written to a connection that then breaks are lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Iterable

from pgraft.core.types import Message
from pgraft.transport.codec import encode_batch
from pgraft.transport.connection import Connection, Local, log
from pgraft.transport.errors import HandshakeError, LocalProtocolError


class Backoff:
    """Exponential backoff with jitter: each delay is uniform in [d/2, d], d doubling
    from ``initial`` up to ``maximum``."""

    def __init__(self, initial: float, maximum: float, rng: random.Random) -> None:
        self._initial = initial
        self._maximum = maximum
        self._rng = rng
        self._next = initial

    def reset(self) -> None:
        self._next = self._initial

    def delay(self) -> float:
        d = self._next
        self._next = min(d * 2, self._maximum)
        return self._rng.uniform(d / 2, d)


class Peer:
    """Outbound queue and connection to one node."""

    def __init__(
        self,
        local: Local,
        node_id: int,
        host: str,
        port: int,
        *,
        queue_size: int,
        connect_timeout: float,
        backoff: Backoff,
    ) -> None:
        self.local = local
        self.node_id = node_id
        self.host = host
        self.port = port
        self.queue: deque[Message] = deque(maxlen=queue_size)
        self.connected = False
        self._connect_timeout = connect_timeout
        self._backoff = backoff
        self._wakeup = asyncio.Event()
        self._conn: Connection | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"pgraft-peer-{self.node_id}"
        )

    def enqueue(self, messages: Iterable[Message]) -> None:
        queue = self.queue
        limit = queue.maxlen
        for m in messages:
            if len(queue) == limit:
                self.local.stats["dropped"] += 1
            queue.append(m)  # a full deque drops its oldest item
        conn = self._conn
        if self.connected and conn is not None and conn.writable:
            self._flush(conn)
        else:
            self._wakeup.set()

    def redial(self, host: str, port: int) -> None:
        """Use a new address: the current connection (if any) is closed and redialed."""
        self.host, self.port = host, port
        if self._conn is not None:
            self._conn.close()

    def stop(self) -> asyncio.Task[None] | None:
        """Stop dialing and drop the queue; returns the cancelled task to await."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        if self._conn is not None:
            self._conn.close()
        self.queue.clear()
        return task

    # ------------------------------------------------------------ task
    async def _run(self) -> None:
        while True:
            try:
                conn = await self._connect()
            except (OSError, HandshakeError) as exc:
                self._note_failure(exc)
            else:
                self._backoff.reset()
                self.connected = True
                try:
                    await self._pump(conn)
                except LocalProtocolError:
                    log.exception(
                        "node %d: cannot send to node %d", self.local.node_id, self.node_id
                    )
                finally:
                    self.connected = False
                    conn.close()
            await asyncio.sleep(self._backoff.delay())

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def established(conn: Connection) -> None:
            if not ready.done():
                ready.set_result(None)

        def closed(conn: Connection, reason: str | None) -> None:
            if not ready.done():
                ready.set_exception(HandshakeError(reason or "connection closed"))
            self._wakeup.set()

        conn = Connection(
            self.local,
            expected_peer=self.node_id,
            on_established=established,
            on_closed=closed,
        )
        self._conn = conn
        try:
            async with asyncio.timeout(self._connect_timeout + self.local.handshake_timeout):
                source = self.local.source_host
                await loop.create_connection(
                    lambda: conn,
                    self.host,
                    self.port,
                    local_addr=None if source is None else (source, 0),
                )
                await ready
        except BaseException:
            conn.close()
            if not ready.done():
                ready.cancel()
            elif not ready.cancelled():
                ready.exception()  # retrieved: the error in flight supersedes it
            raise
        return conn

    def _note_failure(self, exc: BaseException) -> None:
        if isinstance(exc, HandshakeError):
            return  # the connection already counted and logged it
        self.local.rlog.log(
            logging.INFO,  # the peer is down or unreachable: expected, not an attack
            f"dial {self.node_id}",
            "node %d: cannot connect to node %d at %s:%d: %r",
            self.local.node_id,
            self.node_id,
            self.host,
            self.port,
            exc,
        )

    async def _pump(self, conn: Connection) -> None:
        queue = self.queue
        while not conn.closed:
            if not queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self._flush(conn)
            await conn.drain()

    def _flush(self, conn: Connection) -> None:
        batch = list(self.queue)
        self.queue.clear()
        self._write(conn, batch)

    def _write(self, conn: Connection, batch: list[Message]) -> None:
        payload = encode_batch(batch)
        if len(payload) <= self.local.max_frame_size:
            conn.send_payload(payload)
            self.local.stats["messages_out"] += len(batch)
        elif len(batch) > 1:
            half = len(batch) // 2
            self._write(conn, batch[:half])
            self._write(conn, batch[half:])
        else:
            self.local.stats["dropped_oversized"] += 1
            self.local.rlog.log(
                logging.WARNING,
                f"oversized {self.node_id}",
                "node %d: dropped a %s of %d bytes for node %d (maximum frame %d bytes)",
                self.local.node_id,
                type(batch[0]).__name__,
                len(payload),
                self.node_id,
                self.local.max_frame_size,
            )
