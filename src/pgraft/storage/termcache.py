"""The terms of the most recent log entries, kept in memory.

The core asks for ``term(i)`` near the end of the log on every append it checks and
every message it sends; answering those from a list avoids a query (and a CRC check of
the entry's data) each time. The cache covers a contiguous run ``[base, base + len)``
ending at the last index; it is trimmed to ``capacity`` once it holds twice that.
"""

from __future__ import annotations

from collections.abc import Iterable


class TermCache:
    def __init__(self, base: int, terms: Iterable[int], capacity: int) -> None:
        self.base = base
        self._terms = list(terms)
        self._capacity = capacity

    def get(self, index: int) -> int | None:
        """The term at ``index`` if cached."""
        pos = index - self.base
        if 0 <= pos < len(self._terms):
            return self._terms[pos]
        return None

    def append(self, first: int, terms: Iterable[int]) -> None:
        """Entries from ``first`` on were replaced by entries with ``terms``."""
        keep = first - self.base
        if keep < 0 or keep > len(self._terms):
            self._terms, self.base = [], first
        else:
            del self._terms[keep:]
        self._terms.extend(terms)
        if len(self._terms) > 2 * self._capacity:
            drop = len(self._terms) - self._capacity
            del self._terms[:drop]
            self.base += drop

    def compact(self, index: int) -> None:
        """Entries up to ``index`` were discarded."""
        drop = min(index + 1 - self.base, len(self._terms))
        if drop > 0:
            del self._terms[:drop]
            self.base = index + 1

    def reset(self, base: int) -> None:
        """The log is now empty; its next entry will be ``base``."""
        self._terms, self.base = [], base
