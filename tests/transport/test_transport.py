"""Live transports over loopback: exchange, address learning, loss accounting,
reconnection, and hostile peers that must not disturb the others."""

from __future__ import annotations

import asyncio
import struct

import msgpack
import pytest

from pgraft.core.types import (
    AppendEntries,
    ConfState,
    Entry,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    Snapshot,
    SnapshotMeta,
)
from pgraft.transport import LocalProtocolError, PeerHello
from pgraft.transport.codec import encode_batch
from pgraft.transport.framing import FrameDecoder, encode_frame
from pgraft.transport.handshake import Handshake, Identity

from .helpers import CLUSTER_ID, Node, proxy, settle, wait_until

SECRET = b"s3cret-shared-by-the-cluster"


def hb(frm: int, to: int, commit: int = 0) -> Heartbeat:
    return Heartbeat(CLUSTER_ID, frm, to, 1, commit)


def test_three_nodes_exchange_and_learn_addresses() -> None:
    async def main() -> None:
        async with Node(1) as n1, Node(2) as n2, Node(3) as n3:
            # Only node 1 knows the others; they learn its address from its hello.
            n1.t.set_peer_address(2, "127.0.0.1", n2.t.port)
            n1.t.set_peer_address(3, "127.0.0.1", n3.t.port)
            entries = tuple(Entry(1, i, data=b"x" * 64) for i in range(1, 11))
            n1.t.send_many([hb(1, 2), AppendEntries(CLUSTER_ID, 1, 3, 1, 0, 0, entries, 5)])
            await wait_until(lambda: bool(n2.received and n3.received))
            assert n2.received == [hb(1, 2)]
            assert n3.received[0].entries == entries  # type: ignore[union-attr]
            assert n2.t.peer_address(1) == ("127.0.0.1", n1.t.port)
            n2.t.send(1, [HeartbeatResponse(CLUSTER_ID, 2, 1, 1)])
            n3.t.send(1, [HeartbeatResponse(CLUSTER_ID, 3, 1, 1)])
            await wait_until(lambda: len(n1.received) == 2)
            assert {m.frm for m in n1.received} == {2, 3}
            last = n1.t.last_contact(2)
            assert last is not None and n1.t.last_contact(9) is None
            assert n1.t.stats["messages_out"] == 2 and n2.t.stats["messages_in"] == 1

    asyncio.run(main())


def test_order_is_kept_and_batches_are_split_below_the_frame_limit() -> None:
    async def main() -> None:
        async with Node(1, max_frame_size=4096) as n1, Node(2, max_frame_size=4096) as n2:
            n1.t.set_peer_address(2, "127.0.0.1", n2.t.port)
            sent: list[Message] = [
                AppendEntries(CLUSTER_ID, 1, 2, 1, i, 1, (Entry(1, i + 1, data=b"y" * 500),), i)
                for i in range(40)
            ]
            for m in sent:
                n1.t.send(2, [m])
            n1.t.send(
                2, [AppendEntries(CLUSTER_ID, 1, 2, 1, 0, 0, (Entry(1, 1, data=bytes(5000)),), 0)]
            )
            await wait_until(lambda: len(n2.received) == 40)
            await settle()
            assert n2.received == sent
            assert n1.t.stats["dropped_oversized"] == 1

    asyncio.run(main())


def test_queue_overflow_drops_oldest_and_counts() -> None:
    async def main() -> None:
        async with Node(1, queue_size=3) as n1:
            n1.t.set_peer_address(2, "127.0.0.1", 1)  # nothing listens on port 1
            n1.t.send(2, [hb(1, 2, commit=i) for i in range(10)])
            n1.t.send(7, [hb(1, 7)])
            assert n1.t.stats["dropped"] == 7
            assert n1.t.stats["dropped_unknown_peer"] == 1
            assert n1.t.peer_status()[2]["queued"] == 3
            assert [m.commit for m in n1.t._peers[2].queue] == [7, 8, 9]  # type: ignore[union-attr]

    asyncio.run(main())


def test_send_refuses_misaddressed_messages() -> None:
    async def main() -> None:
        async with Node(1) as n1:
            with pytest.raises(LocalProtocolError):
                n1.t.send(2, [hb(1, 3)])
            with pytest.raises(LocalProtocolError):
                n1.t.send(2, [hb(5, 2)])

    asyncio.run(main())


def test_reconnects_after_peer_restart() -> None:
    async def main() -> None:
        async with Node(1) as n1:
            n2 = Node(2)
            await n2.t.start()
            port = n2.t.port
            n1.t.set_peer_address(2, "127.0.0.1", port)
            n1.t.send(2, [hb(1, 2, 1)])
            await wait_until(lambda: bool(n2.received))
            await n2.t.close()
            await wait_until(lambda: not n1.t.peer_status()[2]["connected"])
            async with Node(2, port=port) as again:
                await wait_until(lambda: bool(n1.t.peer_status()[2]["connected"]))
                n1.t.send(2, [hb(1, 2, 2)])
                await wait_until(lambda: bool(again.received))
                assert again.received == [hb(1, 2, 2)]

    asyncio.run(main())


def test_wrong_cluster_name_and_secret_are_refused_live() -> None:
    async def main() -> None:
        async with (
            Node(1, secret=SECRET) as n1,
            Node(2, cluster_name="other", secret=SECRET) as other,
            Node(3, secret=b"not-the-secret") as wrong,
            Node(4, secret=SECRET) as good,
        ):
            for n in (other, wrong, good):
                n.t.set_peer_address(1, "127.0.0.1", n1.t.port)
                n.t.send(1, [hb(n.t.node_id, 1)])
            await wait_until(lambda: n1.t.stats["handshake_failures"] >= 2)
            await wait_until(lambda: bool(n1.received))
            await settle()
            assert {m.frm for m in n1.received} == {4}
            assert other.t.stats["handshake_failures"] >= 1
            assert wrong.t.stats["handshake_failures"] >= 1

    asyncio.run(main())


def test_secret_never_on_the_wire_live() -> None:
    async def main() -> None:
        capture = bytearray()
        async with Node(1, secret=SECRET) as n1, Node(2, secret=SECRET) as n2:
            server = await proxy(n2.t.port, capture)
            port = server.sockets[0].getsockname()[1]
            n1.t.set_peer_address(2, "127.0.0.1", port)
            n1.t.send(2, [hb(1, 2)])
            await wait_until(lambda: bool(n2.received))
            server.close()
        assert len(capture) > 100
        assert SECRET not in capture and SECRET[:8] not in capture

    asyncio.run(main())


async def _raw_exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` on a raw connection; return what came back before the close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:  # closed with our unread bytes pending: a reset
        return b""
    finally:
        writer.close()


async def _authenticated_raw(port: int, node_id: int, batch_payload: bytes) -> bytes:
    """Complete a real handshake as ``node_id``, then send one batch frame."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    dialer = Handshake(
        Identity("c1", CLUSTER_ID, node_id, "127.0.0.1", 9), dialer=True, expected_peer=1
    )
    decoder = FrameDecoder()
    for payload in dialer.start():
        writer.write(encode_frame(payload))
    while not dialer.done:
        data = await asyncio.wait_for(reader.read(4096), 5)
        assert data
        for frame in decoder.feed(data):
            for answer in dialer.receive(frame):
                writer.write(encode_frame(answer))
    writer.write(encode_frame(batch_payload))
    try:
        return await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:  # closed with our unread bytes pending: a reset
        return b""
    finally:
        writer.close()


def test_hostile_raw_peers_do_not_disturb_the_others() -> None:
    async def main() -> None:
        async with Node(1, max_frame_size=1 << 16) as n1, Node(2) as n2:
            port = n1.t.port
            n2.t.set_peer_address(1, "127.0.0.1", port)
            await _raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # not a pgraft peer
            await _raw_exchange(port, struct.pack(">I", 1 << 30))  # oversized frame header
            await _raw_exchange(port, encode_frame(msgpack.packb(["pgraft", 99, "x"])))
            # Authenticated, then garbage, then a forged sender, then an oversized frame.
            await _authenticated_raw(port, 5, b"\xc1garbage")
            await _authenticated_raw(port, 6, encode_batch([hb(7, 1)]))
            reply = await _authenticated_raw(port, 8, b"\x00" * 100_000)
            assert reply == b""  # dropped without an answer
            await settle(0.1)
            stats = n1.t.stats
            assert stats["handshake_failures"] >= 3
            assert stats["protocol_errors"] == 3
            assert n1.received == []
            n2.t.send(1, [hb(2, 1)])
            await wait_until(lambda: bool(n1.received))
            assert n1.received == [hb(2, 1)]
            assert n1.t.peer_address(5) == ("127.0.0.1", 9)  # learned even if later dropped

    asyncio.run(main())


def test_version_mismatch_answered_with_reason() -> None:
    async def main() -> None:
        async with Node(1) as n1:
            reply = await _raw_exchange(n1.t.port, encode_frame(msgpack.packb(["pgraft", 99, "x"])))
            [frame] = FrameDecoder().feed(reply)
            kind, reason = msgpack.unpackb(frame)
            assert kind == "reject" and "version 99 is not supported" in reason

    asyncio.run(main())


def test_adoption_hook_accepts_a_foreign_cluster_id() -> None:
    """A fresh node (cluster id 0) lets the runtime adopt it; the default refuses."""
    seen: list[PeerHello] = []

    def adopt(hello: PeerHello) -> bool:
        seen.append(hello)
        return True

    async def main() -> None:
        async with (
            Node(1, on_peer_hello=adopt) as leader,
            Node(2, cluster_id=0, on_peer_hello=adopt) as fresh,
            Node(3, cluster_id=0) as stranger,
        ):
            leader.t.set_peer_address(2, "127.0.0.1", fresh.t.port)
            leader.t.set_peer_address(3, "127.0.0.1", stranger.t.port)
            leader.t.send_many([hb(1, 2), hb(1, 3)])
            await wait_until(lambda: bool(fresh.received))
            await wait_until(lambda: stranger.t.stats["handshake_failures"] >= 1)
            assert stranger.received == []
            assert (2, 0, False) in {(h.node_id, h.cluster_id, h.inbound) for h in seen}
            assert (1, CLUSTER_ID, True) in {(h.node_id, h.cluster_id, h.inbound) for h in seen}

    asyncio.run(main())


def test_live_exchange_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        async with Node(1) as n1, Node(2) as n2:
            n1.t.set_peer_address(2, "127.0.0.1", n2.t.port)
            n1.t.send(2, [hb(1, 2, i) for i in range(100)])
            await wait_until(lambda: len(n2.received) == 100)
            n2.t.send(1, [hb(2, 1)])
            await wait_until(lambda: bool(n1.received))
            assert [m.commit for m in n2.received] == list(range(100))  # type: ignore[union-attr]

    uvloop.run(main())


def test_silent_peer_is_dropped_after_the_handshake_timeout() -> None:
    async def main() -> None:
        async with Node(1, handshake_timeout=0.2) as n1:
            reader, writer = await asyncio.open_connection("127.0.0.1", n1.t.port)
            reply = await asyncio.wait_for(reader.read(), 5)  # until node 1 closes
            writer.close()
            assert b"handshake timed out" in reply
            assert n1.t.stats["handshake_failures"] == 1

    asyncio.run(main())


def test_address_change_redials_and_remove_peer_stops() -> None:
    async def main() -> None:
        async with Node(1) as n1, Node(2) as old, Node(2) as new:
            n1.t.set_peer_address(2, "127.0.0.1", old.t.port)
            n1.t.send(2, [hb(1, 2, 1)])
            await wait_until(lambda: bool(old.received))
            n1.t.set_peer_address(2, "127.0.0.1", new.t.port)
            await wait_until(lambda: new.t.stats["connections_in"] == 1)
            await wait_until(lambda: bool(n1.t.peer_status()[2]["connected"]))
            n1.t.send(2, [hb(1, 2, 2)])
            await wait_until(lambda: bool(new.received))
            assert old.received == [hb(1, 2, 1)] and new.received == [hb(1, 2, 2)]
            n1.t.remove_peer(2)
            n1.t.send(2, [hb(1, 2, 3)])
            assert n1.t.stats["dropped_unknown_peer"] == 1
            assert n1.t.peer_status() == {}

    asyncio.run(main())


def test_large_snapshot_crosses_intact() -> None:
    data = bytes(range(256)) * (12 << 10)  # 3 MiB, many socket reads
    snap = Snapshot(SnapshotMeta(100, 3, ConfState(frozenset({1, 2}))), data)

    async def main() -> None:
        async with Node(1) as n1, Node(2) as n2:
            n1.t.set_peer_address(2, "127.0.0.1", n2.t.port)
            n1.t.send(2, [InstallSnapshot(CLUSTER_ID, 1, 2, 3, snap), hb(1, 2)])
            await wait_until(lambda: len(n2.received) == 2)
            assert n2.received[0] == InstallSnapshot(CLUSTER_ID, 1, 2, 3, snap)

    asyncio.run(main())


def test_outgoing_connections_come_from_the_listen_address() -> None:
    async def main() -> None:
        async with Node(1, host="127.0.0.2") as n1, Node(2) as n2:
            n1.t.set_peer_address(2, "127.0.0.1", n2.t.port)
            n1.t.send(2, [hb(1, 2)])
            await wait_until(lambda: bool(n2.received))
            assert [c.peerhost for c in n2.t._inbound] == ["127.0.0.2"]

    asyncio.run(main())


def test_stalled_peer_fills_its_queue_without_blocking_others() -> None:
    """A peer that completes the handshake and then never reads: the sender's socket
    buffer fills, its queue overflows (oldest dropped, counted), other peers still get
    their messages."""

    async def stalled_listener(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener = Handshake(Identity("c1", CLUSTER_ID, 2, "127.0.0.1", 9), dialer=False)
        listener.start()
        decoder = FrameDecoder()
        try:
            while not listener.done:
                data = await reader.read(4096)
                assert data, "the sender closed during the handshake"
                for frame in decoder.feed(data):
                    for answer in listener.receive(frame):
                        writer.write(encode_frame(answer))
            await asyncio.sleep(30)  # never read again (cancelled at shutdown)
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(stalled_listener, "127.0.0.1", 0)
        try:
            async with Node(1, queue_size=64) as n1, Node(3) as n3:
                n1.t.set_peer_address(2, "127.0.0.1", server.sockets[0].getsockname()[1])
                n1.t.set_peer_address(3, "127.0.0.1", n3.t.port)
                await wait_until(lambda: bool(n1.t.peer_status()[2]["connected"]))
                big = Heartbeat(CLUSTER_ID, 1, 2, 1, 0, bytes(64 << 10))
                for _ in range(400):  # ~25 MiB: far beyond the socket buffers
                    n1.t.send(2, [big])
                    await asyncio.sleep(0)
                await wait_until(lambda: n1.t.stats["dropped"] > 0)
                n1.t.send(3, [hb(1, 3)])
                await wait_until(lambda: bool(n3.received))
                assert n1.t.peer_status()[2]["queued"] <= 64
        finally:
            server.close()

    asyncio.run(main())
