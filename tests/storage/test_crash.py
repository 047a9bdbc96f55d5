"""Crash test: a real child process writes to storage and is SIGKILLed at seeded
random moments; after each kill the parent reopens the storage and checks that every
acknowledged write survived and the hard state never went backwards.

The child (``crash_child.run``, in a forked process) writes ``W ...`` before each
write and ``A ...`` after ``save_ready`` returns. At most one write is in flight at a
kill, and it may or may not have landed, so the checker accepts the disk if it
matches the acknowledged model either without or with that in-flight write. A child
that acknowledges before writing (``ack_early``) must be caught.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pgraft.core.types import Entry, HardState
from pgraft.statemachine import LogRecord, StateMachine
from pgraft.storage import DurableStorage

sys.path.insert(0, str(Path(__file__).parent))
import crash_child
from crash_child import body, payload


@dataclass(frozen=True)
class Write:
    first: int
    last: int
    term: int
    vote: int
    commit: int


@dataclass
class Model:
    """What the child acknowledged: index -> term of every entry, and the hard state."""

    terms: dict[int, int] = field(default_factory=dict)
    hard: HardState = field(default_factory=HardState)

    def with_write(self, w: Write) -> Model:
        terms = {i: t for i, t in self.terms.items() if i < w.first}
        terms.update(dict.fromkeys(range(w.first, w.last + 1), w.term))
        return Model(terms, HardState(w.term, w.vote, w.commit))


@dataclass
class Report:
    kills: int = 0
    acks: int = 0
    inflight_kills: int = 0  # kills that landed between a W line and its A line
    compactions_seen: int = 0
    entries_checked: int = 0
    violations: list[str] = field(default_factory=list)


def _fork(data_dir: Path, seed: int, ack_early: bool) -> tuple[int, int]:
    """Start a child writer; returns its pid and the read end of its output pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the test
        code = 1
        try:
            os.close(r)
            crash_child.run(str(data_dir), seed, w, ack_early)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


def _read_until(fd: int, buf: bytearray, stop: bytes | None, timeout: float) -> None:
    """Read the child's stdout (unbuffered, straight from the pipe) into ``buf`` until
    it contains ``stop`` (None: until EOF) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while stop is None or stop not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return
        buf += chunk


@dataclass(frozen=True)
class Observation:
    model: Model  # the model the disk matched: the next incarnation continues from it
    hard: HardState  # the hard state on disk
    first_index: int
    problems: list[str]


def check(data_dir: Path, model: Model, pending: Write | None, seen: HardState) -> Observation:
    """Compare the disk with the acknowledged model, or with the model plus the write
    in flight, and with the hard state seen after the previous kill."""
    with DurableStorage.open(data_dir, node_id=1, cluster_name="crash") as st:
        sm = StateMachine(st)
        hs, first = st.hard_state, st.first_index()
        problems = []
        if hs.term < seen.term or hs.commit < seen.commit:
            problems.append(f"hard state went back from {seen} to {hs}")
        disk = {e.index: e for e in st.entries(first, st.last_index() + 1)}
        user = {r.index: r for r in sm.log_read(0, st.applied, 1 << 30)}
        candidates = [model] if pending is None else [model.with_write(pending), model]
        errors = [_diff(st, disk, user, m) for m in candidates]
        if all(errors):
            return Observation(model, hs, first, [*problems, errors[-1]])
        match = candidates[errors.index("")]
        kept = {i: t for i, t in match.terms.items() if i >= first}  # compacted: checked before
        return Observation(Model(kept, match.hard), hs, first, problems)


def _diff(st: DurableStorage, disk: dict[int, Entry], user: dict[int, LogRecord], m: Model) -> str:
    hs = st.hard_state
    if hs.term < m.hard.term or hs.commit < m.hard.commit:
        return f"acknowledged hard state {m.hard} lost: disk has {hs}"
    if hs.term == m.hard.term and m.hard.vote and hs.vote != m.hard.vote:
        return f"acknowledged vote {m.hard.vote} in term {hs.term} lost"
    snap = st.first_index() - 1
    for index, term in m.terms.items():
        if index <= snap:
            continue
        got = disk.get(index)
        if got is None:
            return f"acknowledged entry {index} missing (last index {st.last_index()})"
        if got.term != term or got.data != payload(index, term):
            return f"acknowledged entry {index}@{term} differs: term {got.term}"
    for index, term in m.terms.items():
        if index <= min(st.applied, m.hard.commit):
            rec = user.get(index)
            if rec is None or rec.data != body(index, term):
                return f"applied entry {index} missing or wrong in the user log"
    return ""


def campaign(
    data_dir: Path, seed: int, kills: int, *, ack_early: bool = False, budget_s: float = 200
) -> Report:
    rng = random.Random(seed)
    report = Report()
    model, seen, first_index = Model(), HardState(), 1
    deadline = time.monotonic() + budget_s
    for k in range(kills):
        if time.monotonic() > deadline:
            break
        pid, fd = _fork(data_dir, seed + k, ack_early)
        buf = bytearray()
        if rng.random() < 0.1:
            time.sleep(rng.uniform(0, 0.02))  # may land inside open/recovery
        else:
            _read_until(fd, buf, b"R\n", 10)
            time.sleep(rng.uniform(0, 0.04))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        _read_until(fd, buf, None, 10)
        os.close(fd)
        report.kills += 1
        pending = None
        for line in buf.decode().splitlines(keepends=True):
            if not line.endswith("\n") or line[0] not in "WA":
                continue  # the last line may be cut off by the kill
            w = Write(*(int(x) for x in line.split()[1:]))
            if line[0] == "A":
                model, pending = model.with_write(w), None
                report.acks += 1
            else:
                pending = w
        report.entries_checked += len(model.terms)
        report.inflight_kills += pending is not None
        seen_first = first_index
        obs = check(data_dir, model, pending, seen)
        model, seen, first_index = obs.model, obs.hard, obs.first_index
        report.compactions_seen += first_index > seen_first
        if obs.problems:
            report.violations.extend(f"kill {k}: {p}" for p in obs.problems)
            break
    return report


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    started = time.monotonic()
    report = campaign(tmp_path / "data", seed=20261130, kills=220)
    print(
        json.dumps(
            {
                "kills": report.kills,
                "acks": report.acks,
                "inflight_kills": report.inflight_kills,
                "compactions_seen": report.compactions_seen,
                "entry_checks": report.entries_checked,
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    )
    assert report.violations == []
    assert report.kills >= 200
    assert report.inflight_kills > 0  # some kills landed while a write was in flight
    assert report.compactions_seen > 0


def test_checker_catches_a_child_that_acks_before_writing(tmp_path: Path) -> None:
    report = campaign(tmp_path / "data", seed=7, kills=80, ack_early=True)
    assert report.violations, f"no violation found in {report.kills} kills"
    print(json.dumps({"caught_after_kills": report.kills, "violation": report.violations[0]}))
    assert "lost" in report.violations[0] or "missing" in report.violations[0]


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("seed", [1, 2])
def test_crash_soak(tmp_path: Path, seed: int) -> None:
    report = campaign(tmp_path / "data", seed=seed, kills=2000, budget_s=1500)
    print(json.dumps({"seed": seed, "kills": report.kills, "acks": report.acks}))
    assert report.violations == []
    assert report.kills == 2000
