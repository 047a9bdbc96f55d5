"""The peer transport: a listener, one dialer per peer, callbacks into the runtime.

Theory of operation
-------------------
Design: **each node dials each of its peers and sends only on connections it dialed;
connections it accepts are read-only for messages.** Two nodes thus share two TCP
connections, one per direction. This is the simplest correct design: there is no race
about which of two simultaneous dials survives, each connection has one writer and
one reader, and a reconnect on one side never tears down the other side's sending.

``send(to, messages)`` is synchronous and never blocks: messages join the peer's
bounded queue (overflow drops the oldest, counted in ``stats["dropped"]``) and that
peer's task writes everything queued as one frame. Messages for a node without a known
address are dropped and counted. Received batches go to ``on_messages`` in arrival
order per connection, after the codec validated them and the connection checked that
each came from the authenticated peer and is addressed to this node.

After a peer's handshake succeeds -- cluster name and protocol version equal, shared
secret proven (if configured), TLS certificate verified (if configured) --
``on_peer_hello(hello)`` (synchronous, must not raise) decides whether to accept it
(its ``cluster_id`` may differ: a fresh node can be adopted by another cluster);
without the hook only an equal cluster id is accepted. A node that dials us and whose
address we do not know yet has its advertised address learned from its hello, so a
leader this node has never heard of can be answered.

Misbehaving peers are dropped, counted and logged with rate limiting; nothing they do
stops the transport from serving the others.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import TypedDict

from pgraft.core.types import Message
from pgraft.transport.connection import Connection, Local, log
from pgraft.transport.errors import LocalProtocolError
from pgraft.transport.framing import DEFAULT_MAX_FRAME_SIZE
from pgraft.transport.handshake import MAX_NAME, AcceptHook
from pgraft.transport.peer import Backoff, Peer
from pgraft.transport.tls import TLSContexts

_UNSPECIFIED_HOSTS = ("", "0.0.0.0", "::")


class PeerStatus(TypedDict):
    host: str
    port: int
    connected: bool  # the outbound connection is up (handshake done)
    queued: int  # messages waiting to be written


def _specific_ip(host: str) -> str | None:
    """``host`` if it is one IP address (not a wildcard or a name), else None."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return None if address.is_unspecified else host


class Transport:
    """TCP transport between Raft nodes; see the module docstring.

    The constructor raises ``LocalProtocolError`` on invalid arguments (node id <= 0,
    empty secret, empty or over-long cluster name or host)."""

    def __init__(
        self,
        node_id: int,
        cluster_name: str,
        cluster_id_getter: Callable[[], int],
        listen_host: str,
        listen_port: int,
        *,
        on_messages: Callable[[list[Message]], None],
        on_peer_hello: AcceptHook | None = None,
        secret: bytes | None = None,
        ssl: TLSContexts | None = None,
        advertise_host: str | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        queue_size: int = 4096,
        handshake_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        backoff_initial: float = 0.05,
        backoff_max: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        if node_id <= 0:
            raise LocalProtocolError("node_id must be > 0")
        if secret is not None and not secret:
            raise LocalProtocolError("an empty shared secret is not a secret")
        if not 0 < len(cluster_name) <= MAX_NAME or len(advertise_host or listen_host) > MAX_NAME:
            raise LocalProtocolError(f"cluster name and host must be 1..{MAX_NAME} characters")
        self.local = Local(
            node_id=node_id,
            cluster_name=cluster_name,
            cluster_id_getter=cluster_id_getter,
            host=advertise_host or listen_host,
            port=listen_port,
            source_host=_specific_ip(listen_host),
            secret=secret,
            tls=ssl,
            accept=on_peer_hello,
            max_frame_size=max_frame_size,
            handshake_timeout=handshake_timeout,
        )
        self.node_id = node_id
        self._listen = (listen_host, listen_port)
        self._on_messages = on_messages
        self._queue_size = queue_size
        self._connect_timeout = connect_timeout
        self._backoff = (backoff_initial, backoff_max)
        self._rng = rng or random.Random()
        self._server: asyncio.Server | None = None
        self._inbound: set[Connection] = set()
        self._peers: dict[int, Peer] = {}
        self._stopping: list[asyncio.Task[None]] = []
        self._last_contact: dict[int, float] = {}

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Listen. Raises ``OSError`` if the address cannot be bound."""
        loop = asyncio.get_running_loop()
        host, port = self._listen
        self._server = await loop.create_server(
            self._accept, host, port, reuse_address=True, start_serving=True
        )
        if port == 0:
            self.local.port = self._server.sockets[0].getsockname()[1]
        for peer in self._peers.values():
            peer.start()

    async def close(self) -> None:
        """Stop listening, close every connection and stop every dialer."""
        if self._server is not None:
            self._server.close()
        for conn in list(self._inbound):
            conn.close()
        for node_id in list(self._peers):
            self.remove_peer(node_id)
        stopping, self._stopping = self._stopping, []
        await asyncio.gather(*stopping, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    @property
    def port(self) -> int:
        """The listening port (the bound one after ``start`` with port 0)."""
        return self.local.port

    # ------------------------------------------------------------ peers
    def set_peer_address(self, node_id: int, host: str, port: int) -> None:
        """Dial ``node_id`` at ``host:port`` (and keep dialing). Changing the address
        redials; this node's own id is ignored."""
        if node_id == self.node_id:
            return
        peer = self._peers.get(node_id)
        if peer is None:
            peer = Peer(
                self.local,
                node_id,
                host,
                port,
                queue_size=self._queue_size,
                connect_timeout=self._connect_timeout,
                backoff=Backoff(*self._backoff, self._rng),
            )
            self._peers[node_id] = peer
            if self._server is not None:
                peer.start()
        elif (peer.host, peer.port) != (host, port):
            peer.redial(host, port)

    def remove_peer(self, node_id: int) -> None:
        """Stop dialing ``node_id`` and drop its queued messages."""
        peer = self._peers.pop(node_id, None)
        if peer is not None:
            task = peer.stop()
            if task is not None:
                self._stopping.append(task)

    def peer_address(self, node_id: int) -> tuple[str, int] | None:
        peer = self._peers.get(node_id)
        return None if peer is None else (peer.host, peer.port)

    def last_contact(self, node_id: int) -> float | None:
        """``time.monotonic()`` when a batch from ``node_id`` last arrived, or None."""
        return self._last_contact.get(node_id)

    def peer_status(self) -> dict[int, PeerStatus]:
        """Per peer: address, whether the outbound connection is up, queue length."""
        return {
            node_id: PeerStatus(
                host=p.host, port=p.port, connected=p.connected, queued=len(p.queue)
            )
            for node_id, p in self._peers.items()
        }

    @property
    def stats(self) -> dict[str, int]:
        """A copy of the counters (see ``pgraft.transport.monitor.STAT_NAMES``)."""
        return dict(self.local.stats)

    # ------------------------------------------------------------ sending
    def send(self, to: int, messages: Sequence[Message]) -> None:
        """Queue ``messages`` (all addressed to ``to``, from this node) for ``to``.

        Never blocks. Raises ``LocalProtocolError`` on a message that is not from this
        node to ``to``."""
        me = self.node_id
        for m in messages:
            if m.to != to or m.frm != me:
                raise LocalProtocolError(f"message from {m.frm} to {m.to} passed to send({to})")
        peer = self._peers.get(to)
        if peer is None:
            self.local.stats["dropped_unknown_peer"] += len(messages)
            self.local.rlog.log(
                logging.DEBUG, f"unknown {to}", "node %d: no address for node %d: dropped", me, to
            )
            return
        peer.enqueue(messages)

    def send_many(self, messages: Sequence[Message]) -> None:
        """Queue messages for any peers (e.g. all of one ``Ready``), one batch per peer."""
        by_peer: dict[int, list[Message]] = {}
        for m in messages:
            by_peer.setdefault(m.to, []).append(m)
        for to, batch in by_peer.items():
            self.send(to, batch)

    # ------------------------------------------------------------ inbound
    def _accept(self) -> Connection:
        conn = Connection(
            self.local,
            expected_peer=None,
            on_established=self._established,
            on_closed=self._closed,
            on_messages=self._deliver,
        )
        self._inbound.add(conn)
        return conn

    def _established(self, conn: Connection) -> None:
        hello = conn.peer
        assert hello is not None
        self._last_contact[hello.node_id] = time.monotonic()
        if hello.node_id not in self._peers:
            host = hello.host
            if host in _UNSPECIFIED_HOSTS:
                host = conn.peerhost
            log.info(
                "node %d: learned address %s:%d of node %d from its handshake",
                self.node_id,
                host,
                hello.port,
                hello.node_id,
            )
            self.set_peer_address(hello.node_id, host, hello.port)

    def _closed(self, conn: Connection, reason: str | None) -> None:
        self._inbound.discard(conn)

    def _deliver(self, conn: Connection, messages: list[Message]) -> None:
        assert conn.peer is not None
        self._last_contact[conn.peer.node_id] = time.monotonic()
        self._on_messages(messages)
