"""ReadIndex rounds: batching reads whose heartbeats have not left yet."""

from __future__ import annotations

from helpers_net import Net

from pgraft.core import Heartbeat
from pgraft.core.readonly import ReadOnly


def test_reads_join_the_unsent_round_and_release_in_order() -> None:
    ro = ReadOnly()
    k1 = ro.add_request(5, 1, b"a")
    assert k1
    assert ro.add_request(6, 2, b"b") == b""  # joins k1: its heartbeats are unsent
    ro.seal()
    k2 = ro.add_request(7, 1, b"c")
    assert k2 and k2 != k1
    assert ro.last_pending() == k2
    assert ro.recv_ack(3, k2) == {3}
    released = ro.advance(k2)  # a later round's quorum releases the earlier ones too
    assert [(q.index, q.frm, q.context) for q in released] == [
        (5, 1, b"a"),
        (6, 2, b"b"),
        (7, 1, b"c"),
    ]
    assert ro.last_pending() == b""
    assert ro.recv_ack(3, k1) is None


def test_reads_in_one_batch_share_one_heartbeat_round() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.node(1).propose(b"v")
    net.stabilize()
    net.node(1).read_index(b"r1")
    net.node(1).propose(b"w")
    net.node(1).read_index(b"r2")
    rd = net.node(1).ready()
    beats = [m for m in rd.messages if isinstance(m, Heartbeat)]
    assert len(beats) == 2  # one round, to 2 and 3
    net.queue.extend(rd.messages)
    net.members[1].storage.append(rd.entries)
    net.node(1).advance(rd)
    net.stabilize()
    assert [(r.index, r.context) for r in net.members[1].reads] == [(2, b"r1"), (2, b"r2")]
    net.node(1).read_index(b"r3")
    net.stabilize()
    assert net.members[1].reads[-1].index == 3  # a new round after the first one left
