"""``CommitNotice``: the leader's unanswered commit announcement to caught-up followers."""

from __future__ import annotations

from helpers_net import CLUSTER, Net

from pgraft.core import AppendEntries, AppendResponse, CommitNotice


def _sent(net: Net, kind: type) -> list[object]:
    return [m for m in net.queue if isinstance(m, kind)]


def test_commit_reaches_caught_up_followers_without_an_answer() -> None:
    net = Net([1, 2, 3], seed=11)
    net.elect(1)
    net.node(1).propose(b"a")
    net.handle_ready(1)  # the append goes out
    net.deliver()
    for nid in (2, 3):
        net.handle_ready(nid)  # both acknowledge
    net.deliver()
    net.handle_ready(1)  # commit moved: announce it
    notices = _sent(net, CommitNotice)
    assert {m.to for m in notices} == {2, 3}  # type: ignore[attr-defined]
    assert not _sent(net, AppendEntries)  # no empty append that would be answered
    index = net.node(1).status().commit
    net.deliver()
    for nid in (2, 3):
        net.handle_ready(nid)
        assert net.node(nid).status().commit == index
    assert not _sent(net, AppendResponse)
    assert net.data(2) == net.data(3) == [b"a"]


def test_a_follower_that_acknowledges_late_is_told_the_commit() -> None:
    net = Net([1, 2, 3], seed=12)
    net.elect(1)
    net.node(1).propose(b"a")
    net.handle_ready(1)
    net.deliver()
    net.handle_ready(2)
    net.handle_ready(3)
    late = [m for m in net.queue if m.frm == 3]
    net.queue = [m for m in net.queue if m.frm != 3]
    net.deliver()  # only node 2's acknowledgement: the entry commits
    net.handle_ready(1)
    net.deliver()
    net.handle_ready(2)
    assert net.node(3).status().commit < net.node(1).status().commit
    net.queue.extend(late)  # node 3's acknowledgement arrives after the commit
    net.deliver()
    net.handle_ready(1)
    assert [m.to for m in _sent(net, CommitNotice)] == [3]  # type: ignore[attr-defined]
    net.stabilize()
    assert net.node(3).status().commit == net.node(1).status().commit
    assert net.data(3) == [b"a"]


def test_a_notice_past_the_log_end_is_ignored() -> None:
    net = Net([1, 2, 3], seed=13)
    net.elect(1)
    follower = net.node(2)
    st = follower.status()
    follower.step(CommitNotice(CLUSTER, 1, 2, st.term, st.commit + 100))
    assert follower.status().commit == st.commit
    net.node(1).propose(b"still works")
    net.stabilize()
    assert net.data(2)[-1:] == [b"still works"]
