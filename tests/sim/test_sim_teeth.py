"""The simulator has teeth: each test breaks the core on purpose (monkeypatching inside
the test only) and requires the simulator to report a violation within a bounded
range of seeds; the same seeds and mix must be clean on the real core.

Bugs planted:
(a) a voter grants its vote without checking that the candidate's log is up to date;
(b) a leader commits an entry of an earlier term by counting replicas (the paper's
    Figure 8 hazard) -- caught at once by the commit-rule check, and, with that check
    switched off, later by its consequence: a committed entry overwritten;
(c) the vote is not persisted: either left out of the Ready's hard state, or
    forgotten when the node restarts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from pgraft.core.log import RaftLog
from pgraft.core.raft import Raft
from pgraft.core.rawnode import RawNode
from pgraft.core.types import Ready
from pgraft.sim import MIXES, run_seed
from pgraft.sim.checker import Checker

STEPS = 1000
SAFETY = {
    "election-safety",
    "leader-completeness",
    "committed-changed",
    "log-matching",
    "state-machine-safety",
    "linearizable-read",
}


def _assert_caught(mix: str, seeds: int, kinds: set[str], steps: int = STEPS) -> None:
    """Some seed below ``seeds`` must fail with one of ``kinds``."""
    other: list[str] = []
    for seed in range(seeds):
        result = run_seed(seed, steps, MIXES[mix])
        if result.ok:
            continue
        if result.kind in kinds:
            assert "replay:" in result.report and f"seed={seed}" in result.report
            return
        other.append(f"{seed} ({result.kind})")
    pytest.fail(f"no {sorted(kinds)} violation in {seeds} seeds of mix {mix}; other: {other}")


def _assert_clean(mix: str, seeds: int, steps: int = STEPS) -> None:
    for seed in range(seeds):
        result = run_seed(seed, steps, MIXES[mix])
        assert result.ok, result.report


def _vote_without_log_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RaftLog, "is_up_to_date", lambda self, index, term: True)


def _commit_by_counting(monkeypatch: pytest.MonkeyPatch) -> None:
    def maybe_commit(self: RaftLog, index: int, term: int) -> bool:
        if index > self.committed:
            self.committed = index
            return True
        return False

    monkeypatch.setattr(RaftLog, "maybe_commit", maybe_commit)


def _vote_not_in_hard_state(monkeypatch: pytest.MonkeyPatch) -> None:
    ready = RawNode.ready

    def without_vote(self: RawNode) -> Ready:
        rd = ready(self)
        if rd.hard_state is None:
            return rd
        return dataclasses.replace(rd, hard_state=dataclasses.replace(rd.hard_state, vote=0))

    monkeypatch.setattr(RawNode, "ready", without_vote)


def _vote_forgotten_at_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    init = Raft.__init__

    def forgetful(self: Raft, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)  # type: ignore[arg-type]
        self.vote = 0

    monkeypatch.setattr(Raft, "__init__", forgetful)


Patch = Callable[[pytest.MonkeyPatch], None]
CASES: list[tuple[str, Patch, str, int, set[str]]] = [
    ("vote-without-log-check", _vote_without_log_check, "elections", 50, SAFETY),
    ("commit-by-counting", _commit_by_counting, "figure8", 20, SAFETY | {"leader-commit-rule"}),
    ("vote-not-in-hard-state", _vote_not_in_hard_state, "elections", 20, {"vote-not-durable"}),
    (
        "vote-forgotten-at-restart",
        _vote_forgotten_at_restart,
        "elections",
        50,
        {"restart-state", "double-vote", "election-safety"},
    ),
]


@pytest.mark.parametrize(
    ("name", "patch", "mix", "seeds", "kinds"), CASES, ids=[c[0] for c in CASES]
)
def test_planted_bug_is_caught_and_real_core_is_clean(
    monkeypatch: pytest.MonkeyPatch, name: str, patch: Patch, mix: str, seeds: int, kinds: set[str]
) -> None:
    with monkeypatch.context() as m:
        patch(m)
        _assert_caught(mix, seeds, kinds)
    _assert_clean(mix, seeds)


def test_figure8_consequence_is_caught_without_the_commit_rule_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the direct commit-rule check the simulator still finds the anomaly the
    paper's Figure 8 describes: a later leader lacks (and overwrites) an entry the buggy
    leader had declared committed."""
    with monkeypatch.context() as m:
        _commit_by_counting(m)
        m.setattr(Checker, "on_leader_commit", lambda self, node, hs, storage: None)
        _assert_caught("figure8", 150, SAFETY, steps=2000)
    _assert_clean("figure8", 150, steps=2000)
