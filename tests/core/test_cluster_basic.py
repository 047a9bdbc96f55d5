"""End-to-end: election and replication in a tiny network of RawNodes."""

from __future__ import annotations

from helpers_net import Net

from pgraft.core import Role


def test_election_and_replication() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    for i in range(10):
        net.node(1).propose(b"x%d" % i)
    net.stabilize()
    for nid in (1, 2, 3):
        assert net.data(nid) == [b"x%d" % i for i in range(10)]
        st = net.node(nid).status()
        assert st.commit == 11
        assert st.leader == 1
    assert net.node(2).status().role == Role.FOLLOWER


def test_election_by_ticks() -> None:
    net = Net([1, 2, 3], seed=5)
    net.tick(40)
    lead = net.leader()
    assert lead
    assert all(net.node(i).status().leader == lead for i in (1, 2, 3))
