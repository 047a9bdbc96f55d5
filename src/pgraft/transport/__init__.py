"""Peer transport: msgpack messages in length-prefixed frames over TCP (optionally TLS),
with a handshake (protocol version, cluster name/id, node id, optional shared-secret
challenge-response). See ``transport.py`` for the design."""

from pgraft.transport.errors import (
    HandshakeError,
    LocalProtocolError,
    RemoteProtocolError,
    TransportError,
)
from pgraft.transport.handshake import PROTOCOL_VERSION, PeerHello
from pgraft.transport.tls import TLSContexts
from pgraft.transport.transport import Transport

__all__ = [
    "PROTOCOL_VERSION",
    "HandshakeError",
    "LocalProtocolError",
    "PeerHello",
    "RemoteProtocolError",
    "TLSContexts",
    "Transport",
    "TransportError",
]
