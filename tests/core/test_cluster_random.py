"""Randomized runs of a small cluster with loss, reordering, partitions, restarts and
membership changes, checking Raft's safety properties after every step:

* Election Safety: at most one leader per term.
* State Machine Safety: no two nodes apply different entries at the same index, and each
  node applies indexes in order without gaps.
"""

from __future__ import annotations

import random

import pytest
from helpers_net import Net

from pgraft.core import ConfChange, ConfChangeType, MemoryStorage, ProposalDropped, Role


def _check(net: Net, leaders: dict[int, int], applied: dict[int, tuple[int, bytes]]) -> None:
    for nid, mem in net.members.items():
        st = mem.node.status()
        if st.role == Role.LEADER:
            assert leaders.setdefault(st.term, nid) == nid, f"two leaders in term {st.term}"
        assert st.applied <= st.commit <= st.last_index


def _run(seed: int, steps: int, **cfg: object) -> None:
    rng = random.Random(seed)
    net = Net([1, 2, 3], seed=seed, **cfg)
    leaders: dict[int, int] = {}
    applied: dict[int, tuple[int, bytes]] = {}
    last_applied = dict.fromkeys(net.members, 0)
    proposals = 0
    for _ in range(steps):
        action = rng.random()
        nid = rng.choice(sorted(net.members))
        if action < 0.12:
            if nid not in net.down:
                net.members[nid].node.tick()
        elif action < 0.45:
            try:
                if nid not in net.down:
                    net.node(nid).propose(b"p%d" % proposals)
                    proposals += 1
            except ProposalDropped:
                pass
        elif action < 0.47:
            kind = rng.choice([ConfChangeType.ADD_LEARNER, ConfChangeType.ADD_NODE])
            target = rng.choice([1, 2, 3, 4])
            if rng.random() < 0.3:
                kind = ConfChangeType.REMOVE_NODE
            try:
                if nid not in net.down:
                    net.node(nid).propose_conf_change(ConfChange(kind, target))
            except ProposalDropped:
                pass
        elif action < 0.49:
            net.cut = {(a, b) for a in net.members for b in net.members if rng.random() < 0.2}
        elif action < 0.5:
            if nid in net.down:
                mem = net.add(nid, net.members[nid].storage, applied=last_applied[nid])
            else:
                net.down.add(nid)
        elif action < 0.53 and 4 not in net.members:
            net.add(4, MemoryStorage())
            last_applied[4] = 0
        elif action < 0.75:
            net.handle_ready(nid)
            mem = net.members[nid]
            for e in mem.applied:
                assert e.index == last_applied[nid] + 1, "applied out of order"
                last_applied[nid] = e.index
                prev = applied.setdefault(e.index, (e.term, e.data))
                assert prev == (e.term, e.data), f"divergent entry at {e.index}"
            mem.applied = []
            if mem.snapshots:
                last_applied[nid] = mem.storage.snapshot().meta.index
                mem.snapshots = 0
        else:
            for _ in range(min(len(net.queue), rng.randint(1, 12))):
                m = net.queue.pop(rng.randrange(len(net.queue)))
                if rng.random() < 0.1:
                    continue  # lost
                if rng.random() < 0.05:
                    net.queue.append(m)  # duplicated
                if (
                    m.to in net.members
                    and m.to not in net.down
                    and m.frm not in net.down
                    and (m.frm, m.to) not in net.cut
                ):
                    net.node(m.to).step(m)
        if rng.random() < 0.01:
            lead = net.leader()
            if lead:
                mem = net.members[lead]
                st = mem.node.status()
                if st.applied > mem.storage.snapshot().meta.index:
                    mem.storage.create_snapshot(st.applied, st.conf_state, b"")
                    mem.storage.compact(st.applied)
        _check(net, leaders, applied)
    # Liveness after healing: a leader emerges and commits a new proposal everywhere.
    net.cut.clear()
    for nid in sorted(net.down):
        net.add(nid, net.members[nid].storage, applied=last_applied[nid])
    lead = 0
    for _ in range(25):  # without PreVote a stale node may disrupt a few rounds
        net.tick(20)
        lead = net.leader()
        if lead:
            try:
                net.node(lead).propose(b"final")
                break
            except ProposalDropped:  # a removed leader still handing over
                continue
    else:
        raise AssertionError("no leader accepted a proposal")
    _check(net, leaders, applied)
    for _ in range(20):  # a lost snapshot is re-sent after a few election timeouts
        net.tick(5)
        lst = net.node(lead).status()
        members = lst.conf_state.voters | lst.conf_state.learners
        if all(net.node(nid).status().commit == lst.commit for nid in members):
            break
    else:
        raise AssertionError(f"members did not catch up: {lst}")
    _check(net, leaders, applied)
    for mem in net.members.values():
        for e in mem.applied:
            assert applied.setdefault(e.index, (e.term, e.data)) == (e.term, e.data)


@pytest.mark.parametrize("seed", range(20))
def test_random_cluster_safety(seed: int) -> None:
    _run(seed, 3000)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(
    "cfg",
    [
        {"pre_vote": False},
        {"check_quorum": False},
        {"pre_vote": False, "check_quorum": False},
        {"max_inflight": 2, "max_msg_entries": 2},
    ],
    ids=["no-prevote", "no-checkquorum", "neither", "small-windows"],
)
def test_random_cluster_safety_variants(seed: int, cfg: dict[str, object]) -> None:
    _run(seed, 2000, **cfg)
