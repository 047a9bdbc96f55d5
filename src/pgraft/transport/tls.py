"""Mutual TLS for peer connections, sans-I/O.

Theory of operation
-------------------
Every node holds a certificate and key signed by the cluster's CA and trusts only that
CA. Both directions require a certificate (``CERT_REQUIRED``): the dialer verifies the
listener and the listener verifies the dialer. Host names are not checked: nodes are
addressed by IP and membership, and identity is "holds a certificate from the cluster
CA" -- the handshake then checks cluster name, node id and (optionally) the shared
secret. TLS 1.2 is the minimum.

``TLSSession`` runs TLS over memory buffers (``ssl.MemoryBIO``): ciphertext in,
plaintext and ciphertext-to-send out. The connection drives it exactly like the frame
decoder, so TLS works the same on asyncio and uvloop, and a certificate refused on
either side is an ordinary, counted handshake failure rather than an event-loop error.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TLSContexts:
    server: ssl.SSLContext  # for connections this node accepts
    client: ssl.SSLContext  # for connections this node dials

    @classmethod
    def from_files(cls, cert: str, key: str, ca: str) -> TLSContexts:
        """Build both contexts. Raises ``OSError``/``ssl.SSLError`` on unreadable or
        invalid files."""
        return cls(
            _context(ssl.PROTOCOL_TLS_SERVER, cert, key, ca),
            _context(ssl.PROTOCOL_TLS_CLIENT, cert, key, ca),
        )


def _context(protocol: int, cert: str, key: str, ca: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(protocol)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cafile=ca)
    return ctx


class TLSSession:
    """One TLS connection over memory buffers. Methods raise ``ssl.SSLError`` when TLS
    fails (bad certificate, corrupt record); ``ssl.SSLZeroReturnError`` means the peer
    closed TLS cleanly."""

    _READ = 1 << 16

    def __init__(self, context: ssl.SSLContext, *, server_side: bool) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._incoming, self._outgoing, server_side=server_side)
        self.established = False

    def start(self) -> bytes:
        """Begin the TLS handshake; returns the bytes to send (the ClientHello)."""
        self._handshake()
        return self._outgoing.read()

    def receive(self, data: bytes) -> tuple[bytes, bytes]:
        """Feed ciphertext; returns (plaintext received, ciphertext to send)."""
        self._incoming.write(data)
        if not self.established:
            self._handshake()
        chunks = []
        while self.established:
            try:
                chunk = self._obj.read(self._READ)
            except ssl.SSLWantReadError:
                break
            chunks.append(chunk)
        return b"".join(chunks), self._outgoing.read()

    def encrypt(self, data: bytes) -> bytes:
        """Encrypt plaintext (only once ``established``); returns the ciphertext."""
        view = memoryview(data)
        while view:
            view = view[self._obj.write(view) :]
        return self._outgoing.read()

    def _handshake(self) -> None:
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            return
        self.established = True
