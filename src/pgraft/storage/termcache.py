"""The terms of the most recent log entries, kept in memory.

The core asks for ``term(i)`` near the end of the log on every append it checks and
every message it sends; answering those from a list avoids a query (and a CRC check of
the entry's data) each time. The cache covers a contiguous run ``[base, base + len)``
ending at the last index; it is trimmed to ``capacity`` once it holds twice that.
"""

from __future__ import annotations

from collections.abc import Iterable


class TermCache:
    """``(base, terms)`` live in one attribute: ``get`` reads both in one load, and
    every change other than appending at the end installs a new pair instead of
    shifting a list someone may hold (so a reader in another thread never sees a
    shifted position; the node's runtime reads and writes on one thread today)."""

    def __init__(self, base: int, terms: Iterable[int], capacity: int) -> None:
        self._run: tuple[int, list[int]] = (base, list(terms))
        self._capacity = capacity

    @property
    def base(self) -> int:
        return self._run[0]

    def get(self, index: int) -> int | None:
        """The term at ``index`` if cached."""
        base, terms = self._run
        pos = index - base
        if 0 <= pos < len(terms):
            return terms[pos]
        return None

    def append(self, first: int, terms: Iterable[int]) -> None:
        """Entries from ``first`` on were replaced by entries with ``terms``."""
        base, cached = self._run
        keep = first - base
        if keep == len(cached):
            cached.extend(terms)  # readers never see a shifted position
        elif 0 <= keep < len(cached):
            self._run = (base, [*cached[:keep], *terms])
        else:
            self._run = (first, list(terms))
        base, cached = self._run
        if len(cached) > 2 * self._capacity:
            drop = len(cached) - self._capacity
            self._run = (base + drop, cached[drop:])

    def compact(self, index: int) -> None:
        """Entries up to ``index`` were discarded."""
        base, cached = self._run
        drop = min(index + 1 - base, len(cached))
        if drop > 0:
            self._run = (index + 1, cached[drop:])

    def reset(self, base: int) -> None:
        """The log is now empty; its next entry will be ``base``."""
        self._run = (base, [])
