"""A leader's view of each follower's log: how far it matches, what to send next.

Theory of operation
-------------------
Each follower is in one of three states:

* ``PROBE``: the leader does not know where the logs diverge. It sends one append at a
  time (then ``paused`` until a reply or a heartbeat response) and moves ``next`` back
  on each rejection, guided by the follower's conflict hint.
* ``REPLICATE``: the follower accepted an append, so the leader streams entries
  optimistically, advancing ``next`` as soon as it sends. At most ``max_inflight``
  appends may be unacknowledged (``Inflights``); a full window pauses sending.
* ``SNAPSHOT``: the entries the follower needs were compacted; a snapshot was sent and
  nothing else is until the follower acknowledges an index at or past it (or the
  leader gives up waiting and probes again).

Invariant: ``0 <= match < next``.
"""

from __future__ import annotations

from collections import deque
from enum import IntEnum


class ProgressState(IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class Inflights:
    """The last indexes of unacknowledged appends, oldest first, at most ``size``."""

    __slots__ = ("_q", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._q: deque[int] = deque()

    def add(self, last_index: int) -> None:
        assert len(self._q) < self.size, "inflights overflow"
        self._q.append(last_index)

    def free_le(self, index: int) -> None:
        """Forget every append whose last index is ``<= index`` (acknowledged)."""
        q = self._q
        while q and q[0] <= index:
            q.popleft()

    def free_first_one(self) -> None:
        """Forget the oldest append (used to probe again when the window stays full)."""
        if self._q:
            self._q.popleft()

    def full(self) -> bool:
        return len(self._q) >= self.size

    def count(self) -> int:
        return len(self._q)

    def reset(self) -> None:
        self._q.clear()


class Progress:
    __slots__ = (
        "inflights",
        "is_learner",
        "match",
        "next",
        "paused",
        "pending_snapshot",
        "recent_active",
        "sent_commit",
        "snapshot_ticks",
        "state",
    )

    def __init__(self, next_index: int, max_inflight: int, is_learner: bool = False) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.paused = False
        self.pending_snapshot = 0
        self.snapshot_ticks = 0
        self.recent_active = True
        self.sent_commit = 0  # highest commit index told to the follower (approximate)
        self.is_learner = is_learner
        self.inflights = Inflights(max_inflight)

    def __repr__(self) -> str:
        return (
            f"Progress(match={self.match}, next={self.next}, state={self.state.name}, "
            f"paused={self.paused}, inflight={self.inflights.count()})"
        )

    def _reset(self, state: ProgressState) -> None:
        self.paused = False
        self.pending_snapshot = 0
        self.snapshot_ticks = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, index: int) -> bool:
        """The follower acknowledged ``index``; False if that is old news."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.paused = False
        if self.next < index + 1:
            self.next = index + 1
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """The follower rejected an append at ``rejected``; step ``next`` back (at most
        to ``match_hint + 1``). False if the rejection is stale."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.paused = False
        return True

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.paused
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True
