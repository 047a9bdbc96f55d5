"""The simulator's own parts: the network misbehaves as told and the checker catches
each kind of violation it claims to (fed by hand, without a core)."""

from __future__ import annotations

import random

import pytest

from pgraft.core.storage import MemoryStorage
from pgraft.core.types import (
    AppendEntries,
    AppendResponse,
    ConfState,
    Entry,
    HardState,
    Heartbeat,
    VoteResponse,
)
from pgraft.sim.checker import Checker, Violation
from pgraft.sim.network import LinkFaults, Network
from pgraft.sim.trace import Trace


def _hb(frm: int, to: int, term: int = 1) -> Heartbeat:
    return Heartbeat(1, frm, to, term, 0)


def _drain(net: Network) -> list[Heartbeat]:
    out = []
    while net.has_due():
        msg = net.pop_due()
        if msg is not None:
            assert isinstance(msg, Heartbeat)
            out.append(msg)
    return out


def test_network_fifo_without_faults() -> None:
    net = Network(random.Random(1), Trace(10))
    msgs = [_hb(1, 2, t) for t in range(1, 6)]
    for m in msgs:
        net.send(m)
    assert _drain(net) == msgs


def test_network_partition_cuts_in_flight_and_heal_restores() -> None:
    net = Network(random.Random(1), Trace(10))
    net.send(_hb(1, 2))
    net.partition({1}, {2, 3}, both_ways=False)
    net.send(_hb(1, 3))
    net.send(_hb(3, 1))
    assert _drain(net) == [_hb(3, 1)]  # the in-flight 1->2 is cut at delivery
    net.heal()
    net.send(_hb(1, 2))
    assert _drain(net) == [_hb(1, 2)]


def test_network_delay_duplicate_and_drop() -> None:
    net = Network(random.Random(7), Trace(10))
    net.faults = LinkFaults(drop=0.0, duplicate=1.0, delay=1.0, max_delay=2)
    net.send(_hb(1, 2))
    assert not net.has_due() and net.pending() == 2
    net.advance(2)
    assert _drain(net) == [_hb(1, 2), _hb(1, 2)]
    net.faults = LinkFaults(drop=1.0)
    net.send(_hb(1, 2))
    assert net.pending() == 0 and net.dropped == 1


def test_network_reorders_when_asked() -> None:
    net = Network(random.Random(3), Trace(10))
    net.faults = LinkFaults(reorder=1.0)
    msgs = [_hb(1, 2, t) for t in range(1, 30)]
    for m in msgs:
        net.send(m)
    got = _drain(net)
    assert sorted(got, key=lambda m: m.term) == msgs and got != msgs


def _kind(fn: object, *args: object) -> str:
    with pytest.raises(Violation) as info:
        fn(*args)  # type: ignore[operator]
    return info.value.kind


def test_checker_election_safety() -> None:
    c = Checker()
    c.on_leader(1, 5)
    c.on_leader(1, 5)
    assert _kind(c.on_leader, 2, 5) == "election-safety"


def test_checker_log_matching() -> None:
    c = Checker()
    c.on_append(1, (Entry(1, 1, data=b"a"), Entry(1, 2, data=b"b")), 0)
    c.on_append(2, (Entry(1, 2, data=b"b"),), 1)
    assert _kind(c.on_append, 3, (Entry(1, 2, data=b"x"),), 1) == "log-matching"
    assert _kind(c.on_append, 3, (Entry(1, 2, data=b"b"),), 0) == "log-matching"


def test_checker_leader_completeness() -> None:
    c = Checker()
    s = MemoryStorage.bootstrap(ConfState(voters=frozenset({1})))
    s.append([Entry(1, 1), Entry(1, 2)])
    c.on_commit(1, HardState(2, 1, 2), 0, s)  # committed, seen in term 2
    c.check_completeness(1, 3, s)
    other = MemoryStorage.bootstrap(ConfState(voters=frozenset({1})))
    other.append([Entry(1, 1), Entry(2, 2)])
    c.check_completeness(2, 2, other)  # a leader of term 2 (elected late) may lack it
    assert _kind(c.check_completeness, 2, 3, other) == "leader-completeness"
    assert _kind(c.on_commit, 2, HardState(3, 1, 2), 0, other) == "committed-changed"


def test_checker_state_machine_safety() -> None:
    c = Checker()
    c.on_apply(1, Entry(1, 1, data=b"a"), 11)
    c.on_apply(2, Entry(1, 1, data=b"a"), 11)
    assert _kind(c.on_apply, 3, Entry(2, 1, data=b"b"), 12) == "state-machine-safety"
    assert _kind(c.on_digest, 3, 1, 99) == "state-machine-safety"


def test_checker_monotonic_state_and_restart() -> None:
    c = Checker()
    hs = HardState(3, 2, 7)
    assert _kind(c.on_hard_state, 1, hs, HardState(2, 2, 7)) == "term-regress"
    assert _kind(c.on_hard_state, 1, hs, HardState(3, 1, 7)) == "vote-changed"
    assert _kind(c.on_hard_state, 1, hs, HardState(3, 2, 6)) == "commit-regress"
    c.on_hard_state(1, hs, HardState(4, 0, 8))
    assert _kind(c.on_restart, 1, hs, 3, 0, 7) == "restart-state"
    assert _kind(c.on_restart, 1, hs, 3, 2, 6) == "commit-regress"


def test_checker_durability_before_sending() -> None:
    c = Checker()
    s = MemoryStorage.bootstrap(ConfState(voters=frozenset({1, 2, 3})))
    grant = VoteResponse(1, 1, 2, 3, reject=False)
    assert _kind(c.on_send, 1, grant, HardState(3, 0, 0), s) == "vote-not-durable"
    c.on_send(1, VoteResponse(1, 1, 2, 2, reject=False), HardState(3, 0, 0), s)
    assert _kind(c.on_send, 1, grant, HardState(2, 2, 0), s) == "term-not-durable"
    c.on_send(1, grant, HardState(3, 2, 0), s)
    other = VoteResponse(1, 1, 4, 3, reject=False)
    assert _kind(c.on_send, 1, other, HardState(3, 4, 0), s) == "double-vote"


def test_checker_acknowledgements_must_match_the_leaders_log() -> None:
    c = Checker()
    s = MemoryStorage.bootstrap(ConfState(voters=frozenset({1, 2, 3})))
    hs = HardState(3, 2, 0)
    c.on_send(2, AppendEntries(1, 2, 1, 2, 0, 0, (Entry(2, 1), Entry(2, 2)), 0), hs, s)
    s.append([Entry(3, 1)])
    ack = AppendResponse(1, 1, 2, 2, index=2)
    assert _kind(c.on_send, 1, ack, hs, s) == "ack-not-durable"  # beyond the log
    ack = AppendResponse(1, 1, 2, 2, index=1)
    assert _kind(c.on_send, 1, ack, hs, s) == "ack-not-durable"  # another entry there
    s.append([Entry(2, 1), Entry(2, 2)])
    c.on_send(1, AppendResponse(1, 1, 2, 2, index=2), hs, s)


def test_checker_linearizable_reads() -> None:
    c = Checker()
    s = MemoryStorage.bootstrap(ConfState(voters=frozenset({1})))
    s.append([Entry(1, 1), Entry(1, 2)])
    c.on_commit(1, HardState(1, 1, 2), 0, s)
    c.begin_read(b"r1")
    c.on_read_state(1, 2, b"r1")
    assert _kind(c.on_read_state, 1, 1, b"r1") == "linearizable-read"
    assert _kind(c.on_read_state, 1, 5, b"nope") == "read-unknown"
