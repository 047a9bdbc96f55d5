"""The connection protocol object driven directly: whatever bytes a peer sends, nothing
escapes ``data_received`` -- the connection delivers, or counts and closes."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pgraft.core.types import Heartbeat, Message
from pgraft.transport.codec import encode_batch
from pgraft.transport.connection import Connection, Local
from pgraft.transport.framing import FrameDecoder, encode_frame
from pgraft.transport.handshake import Handshake, Identity


class FakeTransport:
    """Records writes; enough of ``asyncio.Transport`` for a Connection."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else None


def _local() -> Local:
    return Local(
        node_id=1,
        cluster_name="c1",
        cluster_id_getter=lambda: 42,
        host="127.0.0.1",
        port=7001,
        source_host=None,
        secret=None,
        tls=None,
        accept=None,
        max_frame_size=4096,
        handshake_timeout=5.0,
    )


async def _established_inbound() -> tuple[Connection, FakeTransport, list[Message]]:
    """An inbound connection from node 2 that completed a real handshake."""
    delivered: list[Message] = []
    conn = Connection(
        _local(),
        expected_peer=None,
        on_established=lambda c: None,
        on_closed=lambda c, r: None,
        on_messages=lambda c, msgs: delivered.extend(msgs),
    )
    fake = FakeTransport()
    conn.connection_made(fake)  # type: ignore[arg-type]
    dialer = Handshake(Identity("c1", 42, 2, "127.0.0.1", 7002), dialer=True, expected_peer=1)
    decoder = FrameDecoder()
    pending = dialer.start()
    while not dialer.done:
        for payload in pending:
            conn.data_received(encode_frame(payload))
        pending = []
        for frame in decoder.feed(bytes(fake.written)):
            pending += dialer.receive(frame)
        fake.written.clear()
    for payload in pending:
        conn.data_received(encode_frame(payload))
    assert conn.peer is not None and not conn.closed
    return conn, fake, delivered


def test_valid_batch_is_delivered() -> None:
    async def main() -> None:
        conn, _, delivered = await _established_inbound()
        hb = Heartbeat(42, 2, 1, 3, 0)
        conn.data_received(encode_frame(encode_batch([hb, hb])))
        assert delivered == [hb, hb]
        conn.close()

    asyncio.run(main())


@given(st.lists(st.binary(max_size=64), max_size=4))
@settings(max_examples=300, deadline=None)
def test_fuzz_bytes_after_handshake(chunks: list[bytes]) -> None:
    async def main() -> None:
        conn, fake, delivered = await _established_inbound()
        stats_before = dict(conn.local.stats)
        for chunk in chunks:
            conn.data_received(chunk)  # must never raise
        if conn.closed:
            assert fake.closed
            assert conn.local.stats["protocol_errors"] == stats_before["protocol_errors"] + 1
        else:
            assert all(m.frm == 2 and m.to == 1 for m in delivered)
        conn.close()

    asyncio.run(main())


@given(st.lists(st.binary(max_size=64), min_size=1, max_size=4))
@settings(max_examples=300, deadline=None)
def test_fuzz_bytes_during_handshake(chunks: list[bytes]) -> None:
    async def main() -> None:
        conn = Connection(
            _local(),
            expected_peer=None,
            on_established=lambda c: None,
            on_closed=lambda c, r: None,
            on_messages=lambda c, msgs: None,
        )
        fake = FakeTransport()
        conn.connection_made(fake)  # type: ignore[arg-type]
        for chunk in chunks:
            conn.data_received(chunk)  # must never raise
        assert conn.peer is None  # random bytes never authenticate
        if conn.closed:
            assert conn.local.stats["handshake_failures"] == 1
        conn.close()

    asyncio.run(main())
