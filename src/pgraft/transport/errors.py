"""Exceptions of the peer transport.

Errors say whose fault they are (the h11 convention): ``RemoteProtocolError`` means the
peer sent something this node will not accept (malformed bytes, an oversized frame, a
failed handshake); the connection is dropped and the node keeps running.
``LocalProtocolError`` means this process misused the transport (a bug here).
"""

from __future__ import annotations


class TransportError(Exception):
    """Root of every error the transport raises."""


class RemoteProtocolError(TransportError):
    """The peer violated the protocol: its connection is dropped."""


class HandshakeError(RemoteProtocolError):
    """The handshake failed; ``reason`` is a sentence fit for the log (never a secret)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LocalProtocolError(TransportError):
    """The caller misused the transport (e.g. sent to itself, or a value that cannot be
    encoded)."""
