"""Write-side invariants of the durable log, checked before anything is written.

A violation means the caller (the core or the runtime) is broken; ``StorageFailure``
makes the node stop instead of writing something Raft forbids.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path

from pgraft.core.types import Entry, HardState
from pgraft.storage.errors import StorageFailure


def check_run(path: Path, entries: Sequence[Entry]) -> None:
    """The entries have consecutive indexes and non-decreasing terms."""
    for prev, e in itertools.pairwise(entries):
        if e.index != prev.index + 1 or e.term < prev.term:
            raise StorageFailure(f"{path}: entries to append are not a log run at {e.index}")


def check_append(
    path: Path,
    entries: Sequence[Entry],
    prev_term: int,
    last: int,
    commit: int,
    term_at: Callable[[int], int],
) -> None:
    """``entries`` (the predecessor of the first has ``prev_term``) may replace the
    log from their first index on: no gap, no term going back, and every committed
    entry (index <= ``commit``) stays as it is (rewritten identically at most)."""
    first = entries[0]
    if first.index > last + 1:
        raise StorageFailure(f"{path}: append at {first.index} leaves a gap after {last}")
    if first.term < prev_term:
        raise StorageFailure(f"{path}: entry {first.index} has a lower term than its predecessor")
    if first.index <= commit and (
        entries[-1].index < commit
        or any(term_at(e.index) != e.term for e in entries[: commit - first.index + 1])
    ):
        raise StorageFailure(
            f"{path}: append at {first.index} would truncate committed entries (commit {commit})"
        )


def check_hard_state(path: Path, old: HardState, new: HardState, last: int) -> None:
    """The term never decreases, the vote never changes within a term, the commit
    index never decreases and never passes the last index."""
    if new.term < old.term:
        raise StorageFailure(f"{path}: term would go back from {old.term} to {new.term}")
    if new.term == old.term and old.vote and new.vote != old.vote:
        raise StorageFailure(f"{path}: vote in term {new.term} would change")
    if new.commit < old.commit or new.commit > last:
        raise StorageFailure(f"{path}: commit {new.commit} outside [{old.commit}, {last}]")


def check_snapshot(path: Path, index: int, applied: int) -> None:
    """A snapshot is installed only above the applied index."""
    if index <= applied and applied > 0:
        raise StorageFailure(f"{path}: snapshot {index} is not above applied index {applied}")
