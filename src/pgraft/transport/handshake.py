"""The connection handshake, sans-I/O: payloads in, payloads out.

Theory of operation
-------------------
Every connection starts with a handshake carried in ordinary frames (msgpack arrays).
The side that dialed is the *dialer*, the other the *listener*::

    dialer                                         listener
      HELLO [magic, version, cluster_name, cluster_id, node_id, host, port, nonce, auth]
      ------------------------------------------------>   checks version, name, auth flag
      <------------------------------------------------  HELLO (its own), AUTH [mac_l]
    checks version, name, node id, auth flag, mac_l; asks the accept hook
      AUTH [mac_d] ----------------------------------->   checks mac_d; asks the hook
      <------------------------------------------------  ACCEPT
    (either side may instead send REJECT [reason] and close)

``magic`` and ``version`` are read before anything else, so a node speaking another
protocol version gets a clear "version N is not supported" rather than "malformed".

With a shared secret, ``mac_x = HMAC-SHA256(secret, label_x || len(hello_d) || hello_d
|| hello_l)`` where ``hello_d``/``hello_l`` are the exact HELLO payloads as sent: each
MAC covers both fresh 32-byte nonces (no replay), every identity field (no splicing)
and a per-direction label (no reflection). The secret itself never travels; MACs are
compared with ``hmac.compare_digest``. The listener proves itself first, so a dialer
never answers a challenge for an unauthenticated peer. Without a secret both MACs are
empty; a secret configured on one side only is refused with that reason.

The peer's ``cluster_id`` is not judged here: a freshly initialized node may be adopted
by another cluster, so an ``accept`` hook (the runtime's decision) sees the peer's
hello; by default only an equal cluster id is accepted.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any

import msgpack

from pgraft.transport.codec import U64_MAX, unpack
from pgraft.transport.errors import HandshakeError, LocalProtocolError, RemoteProtocolError

PROTOCOL_VERSION = 2  # 2: CommitNotice (message kind 13)
MAGIC = "pgraft"
NONCE_SIZE = 32
MAX_NAME = 256
MAX_REASON = 512
_DIALER_LABEL = b"pgraft dialer auth\x00"
_LISTENER_LABEL = b"pgraft listener auth\x00"
_LEN = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Identity:
    """What this node says about itself in a HELLO."""

    cluster_name: str
    cluster_id: int
    node_id: int
    host: str  # advertised address peers should dial
    port: int


@dataclass(frozen=True, slots=True)
class PeerHello:
    """What an authenticated peer said about itself. ``inbound``: it dialed us."""

    node_id: int
    cluster_name: str
    cluster_id: int
    host: str
    port: int
    inbound: bool


AcceptHook = Callable[[PeerHello], bool]


class _State(Enum):
    NEW = auto()
    WAIT_HELLO = auto()
    WAIT_AUTH = auto()
    WAIT_ACCEPT = auto()
    DONE = auto()
    FAILED = auto()


def _pack(value: list[Any]) -> bytes:
    payload: bytes = msgpack.packb(value, use_bin_type=True)
    return payload


def reject_payload(reason: str) -> bytes:
    """The REJECT payload a side sends before closing a failed handshake."""
    return _pack(["reject", reason[:MAX_REASON]])


class Handshake:
    """One side of one connection's handshake.

    ``start()`` returns the payloads to send first; ``receive(payload)`` returns the
    payloads to send in answer. When ``done`` is true, ``peer`` is set. Both raise
    ``HandshakeError`` (with a loggable ``reason``) when the handshake fails; the caller
    should then send ``reject_payload(reason)`` and close."""

    def __init__(
        self,
        local: Identity,
        *,
        dialer: bool,
        secret: bytes | None = None,
        expected_peer: int | None = None,
        accept: AcceptHook | None = None,
        nonce: bytes | None = None,
    ) -> None:
        if secret is not None and not secret:
            raise LocalProtocolError("an empty shared secret is not a secret")
        if dialer and expected_peer is None:
            raise LocalProtocolError("a dialer must know which node it dials")
        self.local = local
        self.dialer = dialer
        self._secret = secret
        self._expected = expected_peer
        self._accept = accept
        self._nonce = nonce if nonce is not None else os.urandom(NONCE_SIZE)
        self._state = _State.NEW
        self._hello_d = b""
        self._hello_l = b""
        self.peer: PeerHello | None = None

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    def start(self) -> list[bytes]:
        if self._state is not _State.NEW:
            raise LocalProtocolError("handshake already started")
        self._state = _State.WAIT_HELLO
        if not self.dialer:
            return []
        self._hello_d = self._hello()
        return [self._hello_d]

    def receive(self, payload: bytes) -> list[bytes]:
        try:
            return self._receive(payload)
        except HandshakeError:
            self._state = _State.FAILED
            raise

    def _receive(self, payload: bytes) -> list[bytes]:
        state = self._state
        if state in (_State.NEW, _State.DONE, _State.FAILED):
            raise LocalProtocolError(f"handshake cannot receive in state {state.name}")
        try:
            value = unpack(payload)
        except RemoteProtocolError as exc:
            raise HandshakeError(f"malformed handshake payload ({exc})") from exc
        if type(value) is list and len(value) == 2 and value[0] == "reject":
            reason = value[1] if type(value[1]) is str else "no reason given"
            raise HandshakeError(f"refused by peer: {reason[:MAX_REASON]!r}")
        if state is _State.WAIT_HELLO:
            self._check_hello(value)
            if self.dialer:
                self._hello_l = payload
                self._state = _State.WAIT_AUTH
                return []
            self._hello_d = payload
            self._hello_l = self._hello()
            self._state = _State.WAIT_AUTH
            return [self._hello_l, _pack(["auth", self._mac(_LISTENER_LABEL)])]
        if state is _State.WAIT_AUTH:
            if type(value) is not list or len(value) != 2 or value[0] != "auth":
                raise HandshakeError("expected AUTH")
            self._check_mac(value[1], _DIALER_LABEL if not self.dialer else _LISTENER_LABEL)
            self._judge()
            if self.dialer:
                self._state = _State.WAIT_ACCEPT
                return [_pack(["auth", self._mac(_DIALER_LABEL)])]
            self._state = _State.DONE
            return [_pack(["accept"])]
        if value != ["accept"]:
            raise HandshakeError("expected ACCEPT")
        self._state = _State.DONE
        return []

    def _hello(self) -> bytes:
        me = self.local
        return _pack(
            [
                MAGIC,
                PROTOCOL_VERSION,
                me.cluster_name,
                me.cluster_id,
                me.node_id,
                me.host,
                me.port,
                self._nonce,
                self._secret is not None,
            ]
        )

    def _check_hello(self, value: Any) -> None:
        if type(value) is not list or len(value) < 2 or value[0] != MAGIC:
            raise HandshakeError("not a pgraft HELLO")
        version = value[1]
        if version != PROTOCOL_VERSION or type(version) is not int:
            raise HandshakeError(
                f"protocol version {version!r} is not supported "
                f"(this node speaks {PROTOCOL_VERSION})"
            )
        if len(value) != 9:
            raise HandshakeError("malformed HELLO")
        _, _, name, cluster_id, node_id, host, port, nonce, auth = value
        if not (
            type(name) is str
            and 0 < len(name) <= MAX_NAME
            and type(cluster_id) is int
            and 0 <= cluster_id <= U64_MAX
            and type(node_id) is int
            and 0 < node_id <= U64_MAX
            and type(host) is str
            and len(host) <= MAX_NAME
            and type(port) is int
            and 0 < port <= 0xFFFF
            and type(nonce) is bytes
            and len(nonce) == NONCE_SIZE
            and type(auth) is bool
        ):
            raise HandshakeError("malformed HELLO")
        me = self.local
        if name != me.cluster_name:
            raise HandshakeError(
                f"peer is in cluster {name!r}, this node is in cluster {me.cluster_name!r}"
            )
        if node_id == me.node_id:
            raise HandshakeError(f"peer claims this node's own id {node_id}")
        if self.dialer and node_id != self._expected:
            raise HandshakeError(
                f"dialed node {self._expected} but node {node_id} answered at that address"
            )
        if auth != (self._secret is not None):
            raise HandshakeError("a shared secret is configured on one side only")
        self.peer = PeerHello(node_id, name, cluster_id, host, port, inbound=not self.dialer)

    def _mac(self, label: bytes) -> bytes:
        if self._secret is None:
            return b""
        transcript = label + _LEN.pack(len(self._hello_d)) + self._hello_d + self._hello_l
        return hmac.new(self._secret, transcript, hashlib.sha256).digest()

    def _check_mac(self, mac: Any, label: bytes) -> None:
        if type(mac) is not bytes or not hmac.compare_digest(mac, self._mac(label)):
            raise HandshakeError("authentication failed (wrong shared secret)")

    def _judge(self) -> None:
        peer = self.peer
        assert peer is not None  # set by _check_hello before any AUTH is accepted
        mine = self.local.cluster_id
        accepted = self._accept(peer) if self._accept else peer.cluster_id == mine
        if not accepted:
            raise HandshakeError(
                f"node {peer.node_id} has cluster id {peer.cluster_id}, "
                f"this node has {mine}: refused"
            )
