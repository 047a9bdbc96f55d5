"""End-to-end checks of the Raft features on a tiny in-process network."""

from __future__ import annotations

import random

import pytest
from helpers_net import CLUSTER, Net

from pgraft.core import (
    AppendEntries,
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Heartbeat,
    MemoryStorage,
    ProgressState,
    ProposalDropped,
    RawNode,
    Role,
    VoteResponse,
)


def test_leader_failure_elects_new_leader_and_keeps_log() -> None:
    net = Net([1, 2, 3], seed=3)
    net.elect(1)
    net.node(1).propose(b"a")
    net.stabilize()
    net.down.add(1)
    net.tick(60)
    new = net.leader()
    assert new in (2, 3)
    net.node(new).propose(b"b")
    net.stabilize()
    other = 5 - new
    assert net.data(other) == [b"a", b"b"]


def test_check_quorum_leader_steps_down_when_isolated() -> None:
    net = Net([1, 2, 3], seed=4)
    net.elect(1)
    net.isolate(1)
    net.tick(25)
    assert net.node(1).status().role == Role.FOLLOWER
    new = net.leader()
    assert new in (2, 3)
    net.heal()
    net.tick(5)
    assert net.node(1).status().leader == new


def test_prevote_isolated_node_does_not_disrupt_on_rejoin() -> None:
    net = Net([1, 2, 3], seed=6)
    net.elect(1)
    net.isolate(3)
    net.tick(60)  # 3 keeps failing pre-votes; its term must not grow
    assert net.node(3).status().term == 1
    net.heal()
    net.tick(3)
    assert net.leader() == 1
    assert net.node(1).status().term == 1


def test_proposal_forwarding_and_dropped_without_leader() -> None:
    net = Net([1, 2, 3])
    with pytest.raises(ProposalDropped):
        net.node(2).propose(b"early")
    net.elect(1)
    net.node(2).propose(b"fwd")
    net.stabilize()
    assert net.data(3) == [b"fwd"]


def test_read_index_on_leader_and_follower() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.node(1).propose(b"v")
    net.stabilize()
    net.node(1).read_index(b"r1")
    net.node(3).read_index(b"r3")
    net.stabilize()
    assert [(r.index, r.context) for r in net.members[1].reads] == [(2, b"r1")]
    assert [(r.index, r.context) for r in net.members[3].reads] == [(2, b"r3")]


def test_read_index_needs_quorum_confirmation() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.isolate(1)
    net.node(1).read_index(b"lost")
    net.stabilize()
    assert net.members[1].reads == []


def test_read_index_single_voter_answers_immediately() -> None:
    net = Net([1])
    net.elect(1)
    net.node(1).read_index(b"x")
    net.stabilize()
    assert [r.context for r in net.members[1].reads] == [b"x"]


def test_transfer_leadership() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.node(1).propose(b"a")
    net.stabilize()
    net.node(2).transfer_leadership(3)  # forwarded to the leader
    net.stabilize()
    assert net.leader() == 3
    assert net.node(3).status().term == 2


def test_transfer_to_lagging_node_catches_up_first_and_drops_proposals() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    net.node(1).propose(b"a")
    net.stabilize()
    net.node(1).transfer_leadership(3)
    net.stabilize()
    with pytest.raises(ProposalDropped):
        net.node(1).propose(b"during")
    net.heal()
    net.tick(1)
    assert net.leader() == 3
    assert net.data(3) == [b"a"]


def test_transfer_aborts_after_election_timeout() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.down.add(3)
    net.node(1).transfer_leadership(3)
    net.stabilize()
    assert net.node(1).status().lead_transferee == 3
    net.tick(11)
    assert net.node(1).status().lead_transferee == 0
    net.node(1).propose(b"ok")


def _cc(kind: ConfChangeType, nid: int) -> ConfChange:
    return ConfChange(kind, nid, b"ctx")


def test_add_learner_promote_and_remove() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.node(1).propose(b"a")
    net.stabilize()
    net.add(4, MemoryStorage())  # joining node: empty configuration
    net.node(1).propose_conf_change(_cc(ConfChangeType.ADD_LEARNER, 4))
    net.stabilize()
    st = net.node(1).status()
    assert st.conf_state.learners == {4}
    assert st.progress[4].match == st.last_index
    assert net.data(4) == [b"a"]
    assert net.node(4).status().conf_state.learners == {4}
    net.node(1).propose_conf_change(_cc(ConfChangeType.ADD_NODE, 4))
    net.stabilize()
    assert net.node(2).status().conf_state.voters == {1, 2, 3, 4}
    net.node(1).propose_conf_change(_cc(ConfChangeType.REMOVE_NODE, 2))
    net.stabilize()
    assert net.node(1).status().conf_state.voters == {1, 3, 4}
    # 2 is out: it never campaigns, and nothing it does disturbs the cluster
    net.tick(50)
    assert net.leader() == 1
    assert net.node(1).status().term == 1


def test_only_one_pending_conf_change() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.isolate(1)
    net.node(1).propose_conf_change(_cc(ConfChangeType.ADD_LEARNER, 4))
    with pytest.raises(ProposalDropped):
        net.node(1).propose_conf_change(_cc(ConfChangeType.ADD_LEARNER, 5))
    net.heal()
    net.stabilize()
    net.node(1).propose_conf_change(_cc(ConfChangeType.ADD_LEARNER, 5))


def test_conf_change_refused_before_term_entry_committed() -> None:
    storage = MemoryStorage.bootstrap(ConfState(frozenset({1, 2})))
    node = RawNode(Config(1, CLUSTER), storage, random.Random(1))
    node.campaign()  # pre-vote requests go out
    node.step(VoteResponse(CLUSTER, 2, 1, 1, False, True))  # pre-vote granted
    node.step(VoteResponse(CLUSTER, 2, 1, 1, False, False))  # vote granted
    assert node.status().role == Role.LEADER  # its no-op is not acknowledged yet
    with pytest.raises(ProposalDropped):
        node.propose_conf_change(_cc(ConfChangeType.ADD_NODE, 3))


def test_remove_leader_steps_down_and_cluster_continues() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.node(1).propose(b"a")
    net.stabilize()
    net.node(1).propose_conf_change(_cc(ConfChangeType.REMOVE_NODE, 1))
    net.stabilize()
    # Once applied, 1 hands leadership to an up-to-date voter and steps down.
    with pytest.raises(ProposalDropped):
        net.node(1).propose(b"refused")
    net.tick(2)
    assert net.node(1).status().role == Role.FOLLOWER
    new = net.leader()
    assert new in (2, 3)
    assert net.node(new).status().term == 2
    net.node(new).propose(b"b")
    net.stabilize()
    assert net.data(5 - new)[-1] == b"b"
    net.tick(50)
    assert net.leader() == new
    assert net.node(1).status().role == Role.FOLLOWER


def test_snapshot_catch_up() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.down.add(3)
    for i in range(20):
        net.node(1).propose(b"%d" % i)
    net.stabilize()
    lead = net.members[1]
    st = lead.node.status()
    lead.storage.create_snapshot(st.applied, st.conf_state, b"image")
    lead.storage.compact(st.applied)
    net.down.discard(3)
    net.tick(3)
    net.stabilize()
    m3 = net.members[3]
    assert m3.snapshots == 1
    assert m3.storage.snapshot().data == b"image"
    assert m3.node.status().commit == st.commit
    net.node(1).propose(b"after")
    net.stabilize()
    assert net.data(3) == [b"after"]
    assert lead.node.status().progress[3].state == ProgressState.REPLICATE


def test_cluster_id_mismatch_dropped_and_counted() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    node = net.node(2)
    node.step(Heartbeat(CLUSTER + 1, 1, 2, 5, 0))
    node.step(AppendEntries(CLUSTER + 1, 3, 2, 9, 0, 0, (), 0))
    st = node.status()
    assert st.dropped_cluster_mismatch == 2
    assert st.term == 1


def test_restart_resumes_from_storage() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    for i in range(5):
        net.node(1).propose(b"%d" % i)
    net.stabilize()
    applied = net.node(2).status().applied
    old = net.members[2]
    mem = net.add(2, old.storage, applied=applied)
    st = mem.node.status()
    assert (st.term, st.commit, st.applied) == (1, 6, applied)
    net.node(1).propose(b"new")
    net.stabilize()
    assert net.data(2) == [b"new"]


def test_restart_replays_conf_changes_up_to_applied() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.node(1).propose_conf_change(_cc(ConfChangeType.ADD_LEARNER, 4))
    net.stabilize()
    applied = net.node(2).status().applied
    mem = net.add(2, net.members[2].storage, applied=applied)
    assert mem.node.status().conf_state.learners == {4}


def test_heartbeat_and_election_counters() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.tick(3)
    st = net.node(1).status()
    assert st.elections_started == 1
    assert st.heartbeats_sent == 6
    assert net.node(2).status().messages_processed > 0


def test_learner_never_campaigns_nor_counts() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.add(4, MemoryStorage())
    net.node(1).propose_conf_change(_cc(ConfChangeType.ADD_LEARNER, 4))
    net.stabilize()
    net.down.update({2, 3})
    net.node(1).propose(b"needs-a-voter")
    net.stabilize()
    assert net.node(1).status().commit < net.node(1).status().last_index
    net.down.add(1)
    net.down.difference_update({2, 3})
    net.isolate(4)
    net.tick(60)
    assert net.node(4).status().role == Role.FOLLOWER
    assert net.node(4).status().elections_started == 0


def test_max_uncommitted_bytes_drops_proposals() -> None:
    net = Net([1, 2, 3], max_uncommitted_bytes=100)
    net.elect(1)
    net.down.update({2, 3})
    net.node(1).propose(b"x" * 60)
    net.node(1).propose(b"y" * 30)
    with pytest.raises(ProposalDropped):
        net.node(1).propose(b"z" * 30)
    net.down.difference_update({2, 3})
    net.tick(2)
    net.node(1).propose(b"z" * 30)  # committed bytes no longer count


def test_read_index_waits_for_commit_in_term() -> None:
    net = Net([1, 2, 3])
    net.node(1).campaign()
    for _ in range(6):  # pre-vote, vote: leader, but its no-op is not acknowledged yet
        for nid in (1, 2, 3):
            net.handle_ready(nid)
        if net.node(1).status().role == Role.LEADER:
            break
        net.deliver()
    assert net.node(1).status().role == Role.LEADER
    net.node(1).read_index(b"early")
    assert net.members[1].reads == []
    net.stabilize()
    assert [(r.index, r.context) for r in net.members[1].reads] == [(1, b"early")]


def test_read_and_transfer_without_leader_raise() -> None:
    net = Net([1, 2, 3])
    with pytest.raises(ProposalDropped):
        net.node(2).read_index(b"r")
    with pytest.raises(ProposalDropped):
        net.node(2).transfer_leadership(3)
    with pytest.raises(ProposalDropped):
        net.node(2).propose_conf_change(_cc(ConfChangeType.ADD_NODE, 4))


def test_partitioned_leader_steps_down_on_rejoin() -> None:
    net = Net([1, 2, 3], check_quorum=False)
    net.elect(1)
    net.isolate(1)
    net.tick(40)
    new = net.leader()
    assert new in (2, 3)
    assert net.node(1).status().role == Role.LEADER  # no CheckQuorum: it does not know
    net.heal()
    net.tick(2)
    assert net.node(1).status().role == Role.FOLLOWER
    assert net.node(1).status().leader == new


def test_follower_rejects_votes_from_non_members() -> None:
    from pgraft.core import VoteRequest

    net = Net([1, 2, 3])
    net.elect(1)
    net.node(2).step(VoteRequest(CLUSTER, 9, 2, 5, 100, 5, pre_vote=False, transfer=True))
    assert net.node(2).status().term == 1
    net.stabilize()
    assert net.leader() == 1


def test_joining_node_starts_from_compacted_leaders_snapshot() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    for i in range(10):
        net.node(1).propose(b"%d" % i)
    net.stabilize()
    lead = net.members[1]
    st = lead.node.status()
    lead.storage.create_snapshot(st.applied, st.conf_state, b"image")
    lead.storage.compact(st.applied)
    net.add(4, MemoryStorage())
    net.node(1).propose_conf_change(_cc(ConfChangeType.ADD_LEARNER, 4))
    net.node(1).propose(b"later")
    net.stabilize()
    m4 = net.members[4]
    assert m4.storage.snapshot().data == b"image"
    assert m4.node.status().conf_state == ConfState(frozenset({1, 2, 3}), frozenset({4}))
    assert net.data(4) == [b"later"]


def test_removed_node_unaware_of_removal_never_disrupts() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    net.node(1).propose_conf_change(_cc(ConfChangeType.REMOVE_NODE, 3))
    net.stabilize()
    assert net.node(1).status().conf_state.voters == {1, 2}
    net.tick(60)  # 3 still thinks it is a voter and keeps trying to campaign
    net.heal()
    net.tick(60)
    assert net.leader() == 1
    assert net.node(1).status().term == 1
    assert net.node(2).status().term == 1


def test_removed_node_ignored_even_without_prevote_and_check_quorum() -> None:
    net = Net([1, 2, 3], pre_vote=False, check_quorum=False)
    net.elect(1)
    net.isolate(3)
    net.node(1).propose_conf_change(_cc(ConfChangeType.REMOVE_NODE, 3))
    net.stabilize()
    net.tick(30)
    net.heal()
    net.tick(60)  # 3 campaigns at ever higher terms; 1 and 2 ignore it
    assert net.leader() == 1
    assert net.node(2).status().term == 1
    assert net.node(3).status().term > 1


def test_removed_leader_hands_over_past_a_dead_voter() -> None:
    net = Net([1, 2, 3, 4])
    net.elect(1)
    net.node(1).propose_conf_change(_cc(ConfChangeType.REMOVE_NODE, 1))
    for _ in range(20):  # run until 1 applied its removal and picked 2 (lowest id)
        for nid in (1, 2, 3, 4):
            net.handle_ready(nid)
        if net.node(1).status().lead_transferee:
            break
        net.deliver()
    assert net.node(1).status().lead_transferee == 2
    net.down.add(2)  # 2 dies before it can take over
    net.tick(40)
    new = net.leader()
    assert new in (3, 4)
    net.node(new).propose(b"b")
    net.stabilize()
    assert net.data(7 - new)[-1] == b"b"
