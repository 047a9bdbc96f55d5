"""One peer connection as an asyncio ``Protocol``: framing, handshake, then messages.

Theory of operation
-------------------
The connection is a thin I/O shell around the sans-I/O pieces: bytes from the socket go
into a ``FrameDecoder``; while the ``Handshake`` is not done each frame goes to it and
its answers are written back; afterwards each frame of an *inbound* connection is a
message batch handed to ``on_messages``. Connections are one-directional: a node sends
only on connections it dialed, so an *outbound* connection that receives a frame after
its handshake is talking to a broken peer and is dropped.

Whatever the peer does wrong -- garbage, an oversized frame, a failed or slow
handshake, messages not from the node it authenticated as or not for this node -- ends
in ``_fail``: the event is counted and logged (rate-limited), the connection is closed,
and nothing propagates into the event loop. TLS, when configured, is a sans-I/O layer
(``TLSSession``) below the framing, on both sides, so that a refused certificate is
counted like any other handshake failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from pgraft.core.types import Message
from pgraft.transport.codec import decode_batch
from pgraft.transport.errors import HandshakeError, RemoteProtocolError
from pgraft.transport.framing import FrameDecoder, encode_frame
from pgraft.transport.handshake import AcceptHook, Handshake, Identity, PeerHello, reject_payload
from pgraft.transport.monitor import RateLimitedLog, new_stats
from pgraft.transport.tls import TLSContexts, TLSSession

log = logging.getLogger("pgraft.transport")

# Linux TCP options: detect a dead peer within ~15 s instead of the kernel's minutes.
_TCP_OPTIONS = (
    (socket.SOL_SOCKET, "SO_KEEPALIVE", 1),
    (socket.IPPROTO_TCP, "TCP_NODELAY", 1),
    (socket.IPPROTO_TCP, "TCP_KEEPIDLE", 5),
    (socket.IPPROTO_TCP, "TCP_KEEPINTVL", 2),
    (socket.IPPROTO_TCP, "TCP_KEEPCNT", 3),
    (socket.IPPROTO_TCP, "TCP_USER_TIMEOUT", 15000),
)


@dataclass(eq=False)
class Local:
    """Everything connections need to know about this node's transport."""

    node_id: int
    cluster_name: str
    cluster_id_getter: Callable[[], int]
    host: str  # advertised
    port: int  # advertised (the bound port once listening)
    source_host: str | None  # bind outgoing connections to this address (None: any)
    secret: bytes | None
    tls: TLSContexts | None
    accept: AcceptHook | None
    max_frame_size: int
    handshake_timeout: float
    stats: dict[str, int] = field(default_factory=new_stats)
    rlog: RateLimitedLog = field(default_factory=lambda: RateLimitedLog(log))

    def identity(self) -> Identity:
        return Identity(
            self.cluster_name, self.cluster_id_getter(), self.node_id, self.host, self.port
        )


def _tune(sock: socket.socket | None) -> None:
    if sock is None:
        return
    for level, name, value in _TCP_OPTIONS:
        option = getattr(socket, name, None)
        # An unsupported option only costs dead-peer detection time: ignore the error.
        if option is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(level, option, value)


class Connection(asyncio.Protocol):
    """See the module docstring. ``expected_peer`` set means this side dialed."""

    def __init__(
        self,
        local: Local,
        *,
        expected_peer: int | None,
        on_established: Callable[[Connection], None],
        on_closed: Callable[[Connection, str | None], None],
        on_messages: Callable[[Connection, list[Message]], None] | None = None,
    ) -> None:
        self.local = local
        self.inbound = expected_peer is None
        self._handshake = Handshake(
            local.identity(),
            dialer=not self.inbound,
            secret=local.secret,
            expected_peer=expected_peer,
            accept=local.accept,
        )
        self._decoder = FrameDecoder(local.max_frame_size)
        self._on_established = on_established
        self._on_closed = on_closed
        self._on_messages = on_messages
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        tls = local.tls
        self._tls: TLSSession | None = None
        if tls is not None:
            context = tls.server if self.inbound else tls.client
            self._tls = TLSSession(context, server_side=self.inbound)
        self._drain_waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._started = False  # the handshake began: frames may be written
        self.closed = False
        self.peername = "?"
        self.peerhost = "?"
        self.peer: PeerHello | None = None

    # ------------------------------------------------------------ asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peerhost = str(peer[0])
            self.peername = f"{peer[0]}:{peer[1]}"
        _tune(transport.get_extra_info("socket"))
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.local.handshake_timeout, self._handshake_timed_out)
        self.local.stats["connections_in" if self.inbound else "connections_out"] += 1
        if self._tls is not None:
            self._write_raw(self._tls.start())
        else:
            self._send_handshake(self._handshake.start())

    def data_received(self, data: bytes) -> None:
        stats = self.local.stats
        stats["bytes_in"] += len(data)
        if self._tls is not None:
            data = self._tls_received(data)
            if not data:
                return
        try:
            frames = self._decoder.feed(data)
        except RemoteProtocolError as exc:
            self._fail(exc)
            return
        for payload in frames:
            if self.closed:
                return
            stats["frames_in"] += 1
            try:
                self._frame_received(payload)
            except RemoteProtocolError as exc:
                self._fail(exc)
                return

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            reason = "connection closed" if exc is None else f"connection lost: {exc}"
            if self._handshake.done:
                self._finish(None if exc is None else reason)
            else:
                self._count_handshake_failure(f"{reason} during handshake")
                self._finish(reason)
        self._wake_drain()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_drain()

    # ------------------------------------------------------------ public
    @property
    def writable(self) -> bool:
        """Open and below the write buffer's high-water mark: a frame written now goes
        straight to the socket."""
        return not (self.closed or self._paused)

    def send_payload(self, payload: bytes) -> None:
        """Write one frame (the caller respects ``max_frame_size``)."""
        if self.closed or self._transport is None:
            return
        frame = encode_frame(payload, self.local.max_frame_size)
        if self._tls is not None:
            try:
                frame = self._tls.encrypt(frame)
            except ssl.SSLError as exc:  # the session already failed on an alert
                self._fail(RemoteProtocolError(f"TLS error: {exc!r}"), notify=False)
                return
        self._write_raw(frame)
        self.local.stats["frames_out"] += 1

    async def drain(self) -> None:
        """Wait while the socket's write buffer is above its high-water mark."""
        if self._paused and not self.closed:
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiter = waiter
            await waiter

    def close(self) -> None:
        """Close locally (not a failure: nothing is counted)."""
        if self._transport is not None:
            self._transport.close()
        self._finish(None)

    # ------------------------------------------------------------ internals
    def _write_raw(self, data: bytes) -> None:
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)
            self.local.stats["bytes_out"] += len(data)

    def _tls_received(self, data: bytes) -> bytes:
        """Decrypt; start the pgraft handshake once TLS is up. Returns plaintext."""
        tls = self._tls
        assert tls is not None
        was_up = tls.established
        try:
            plaintext, answer = tls.receive(data)
        except ssl.SSLError as exc:
            if isinstance(exc, ssl.SSLZeroReturnError):  # TLS closed cleanly: like EOF
                self.connection_lost(None)
                self.close()
            elif was_up and self._handshake.done:
                self._fail(RemoteProtocolError(f"TLS error: {exc!r}"), notify=False)
            else:
                self._fail(HandshakeError(f"TLS failed: {exc!r}"), notify=False)
            return b""
        self._write_raw(answer)
        if tls.established and not was_up:
            self._send_handshake(self._handshake.start())
        return plaintext

    def _frame_received(self, payload: bytes) -> None:
        if self._handshake.done:
            if self._on_messages is None:
                raise RemoteProtocolError("peer sent data on an outbound connection")
            messages = decode_batch(payload)
            me, peer = self.local.node_id, self._handshake.peer
            assert peer is not None
            for m in messages:
                if m.frm != peer.node_id or m.to != me:
                    raise RemoteProtocolError(
                        f"message from {m.frm} to {m.to} on a connection from {peer.node_id}"
                    )
            stats = self.local.stats
            stats["messages_in"] += len(messages)
            self._on_messages(self, messages)
            return
        self._send_handshake(self._handshake.receive(payload))
        if self._handshake.done:
            if self._timer is not None:
                self._timer.cancel()
            self.peer = self._handshake.peer
            self._on_established(self)

    def _send_handshake(self, payloads: list[bytes]) -> None:
        self._started = True
        for payload in payloads:
            self.send_payload(payload)

    def _handshake_timed_out(self) -> None:
        if not self._handshake.done and not self.closed:
            self._fail(HandshakeError("handshake timed out"))

    @property
    def _log_key(self) -> str:
        """Rate-limit key: a dialing offender changes its port, a listener does not."""
        return self.peerhost if self.inbound else self.peername

    def _count_handshake_failure(self, reason: str) -> None:
        self.local.stats["handshake_failures"] += 1
        side = "from" if self.inbound else "to"
        self.local.rlog.log(
            logging.WARNING,
            f"hs {side} {self._log_key}",
            "node %d: handshake %s %s failed: %s",
            self.local.node_id,
            side,
            self.peername,
            reason,
        )

    def _fail(self, exc: RemoteProtocolError, *, notify: bool = True) -> None:
        """Count, log and close. ``notify``: tell the peer why if the handshake is
        under way (not after a TLS failure: the TLS layer is unusable)."""
        if self.closed:
            return
        transport = self._transport
        if isinstance(exc, HandshakeError) or not self._handshake.done:
            reason = exc.reason if isinstance(exc, HandshakeError) else str(exc)
            self._count_handshake_failure(reason)
            if notify and self._started:
                self.send_payload(reject_payload(reason))
        else:
            reason = str(exc)
            self.local.stats["protocol_errors"] += 1
            self.local.rlog.log(
                logging.WARNING,
                f"proto {self._log_key}",
                "node %d: dropping connection with %s: %s",
                self.local.node_id,
                self.peername,
                reason,
            )
        if transport is not None:
            transport.close()
        self._finish(reason)

    def _finish(self, reason: str | None) -> None:
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._wake_drain()
        self._on_closed(self, reason)

    def _wake_drain(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
