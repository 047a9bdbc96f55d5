"""A ring buffer of recent simulation events, formatted only when a run fails.

Theory of operation
-------------------
Recording must be nearly free because a run records tens of thousands of events and
almost never fails. Each event is stored as a tuple ``(step, node, kind, detail)``
where ``detail`` is any value (often an immutable core message); turning it into text
happens only in ``Trace.lines()``, which a failure report calls once. The buffer
keeps the last ``capacity`` events, so memory use is bounded whatever the run length.
"""

from __future__ import annotations

from collections import deque

Event = tuple[int, int, str, object]


class Trace:
    """The last ``capacity`` events of one run."""

    def __init__(self, capacity: int) -> None:
        self._events: deque[Event] = deque(maxlen=max(1, capacity))
        self.step = 0  # set by the world before each step

    def add(self, node: int, kind: str, detail: object = "") -> None:
        self._events.append((self.step, node, kind, detail))

    def lines(self) -> list[str]:
        """The recorded events, oldest first, one readable line each."""
        out = []
        for step, node, kind, detail in self._events:
            who = f"n{node}" if node else "--"
            out.append(f"{step:>7} {who:<4} {kind:<12} {_describe(detail)}")
        return out


def _describe(detail: object) -> str:
    """A compact text for an event detail: message dataclasses lose their header noise."""
    text = repr(detail) if not isinstance(detail, str) else detail
    return text.replace("cluster_id=1, ", "")
