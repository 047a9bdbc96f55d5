"""The simulated network: loss, duplication, delay, reordering and partitions.

Theory of operation
-------------------
Time is the world's clock, counted in ticks. ``send`` decides a message's fate at
once: it is dropped (lossy link, or the link is cut), or queued to become *due* now
or after a random delay of 1..``max_delay`` ticks; with probability ``duplicate`` a
second copy is queued with its own delay. Delayed messages wait in a heap ordered by
due time; ``advance(now)`` moves those that became due into the due list. Delivery
takes the oldest due message, or with probability ``reorder`` a random one, so
messages overtake each other. Links are checked again at delivery, so a partition
that starts while a message is in flight also stops it.

A partition is a set of cut directed links ``(frm, to)``: a symmetric partition cuts
both directions between two groups, a one-way partition only some directions.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

from pgraft.core.types import Message

from .trace import Trace


@dataclass
class LinkFaults:
    """Baseline misbehaviour of every link (probabilities per message)."""

    drop: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    max_delay: int = 0
    reorder: float = 0.0


class Network:
    def __init__(self, rng: random.Random, trace: Trace) -> None:
        self._rng = rng
        self._trace = trace
        self._future: list[tuple[int, int, Message]] = []  # heap of (due, seq, msg)
        self._due: list[Message] = []
        self._seq = 0
        self.now = 0
        self.faults = LinkFaults()
        self.cut: set[tuple[int, int]] = set()
        self.sent = 0
        self.kinds: dict[str, int] = {}  # messages sent, by kind
        self.dropped = 0

    def send(self, msg: Message) -> None:
        self.sent += 1
        kind = type(msg).__name__
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        f = self.faults
        rng = self._rng
        if (msg.frm, msg.to) in self.cut or (f.drop and rng.random() < f.drop):
            self.dropped += 1
            self._trace.add(msg.frm, "drop", msg)
            return
        self._enqueue(msg)
        if f.duplicate and rng.random() < f.duplicate:
            self._trace.add(msg.frm, "duplicate", msg)
            self._enqueue(msg)

    def _enqueue(self, msg: Message) -> None:
        f = self.faults
        if f.delay and f.max_delay > 0 and self._rng.random() < f.delay:
            self._seq += 1
            due = self.now + self._rng.randint(1, f.max_delay)
            heapq.heappush(self._future, (due, self._seq, msg))
        else:
            self._due.append(msg)

    def advance(self, now: int) -> None:
        """Set the clock to ``now`` and make every message due by then deliverable."""
        self.now = now
        future = self._future
        while future and future[0][0] <= now:
            self._due.append(heapq.heappop(future)[2])

    def has_due(self) -> bool:
        return bool(self._due)

    def pending(self) -> int:
        return len(self._due) + len(self._future)

    def pop_due(self) -> Message | None:
        """The next message to deliver, or None when it was cut off in flight."""
        due = self._due
        if self.faults.reorder and len(due) > 1 and self._rng.random() < self.faults.reorder:
            i = self._rng.randrange(len(due))
            msg = due[i]
            due[i] = due[-1]
            due.pop()
        else:
            msg = due.pop(0)
        if (msg.frm, msg.to) in self.cut:
            self.dropped += 1
            self._trace.add(msg.frm, "cut", msg)
            return None
        return msg

    def partition(self, group: set[int], others: set[int], both_ways: bool) -> None:
        for a in group:
            for b in others:
                self.cut.add((a, b))
                if both_ways:
                    self.cut.add((b, a))

    def heal(self) -> None:
        self.cut.clear()
