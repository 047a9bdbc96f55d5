"""The most recently written log entries, kept in memory.

Under load the runtime reads back almost only what it wrote a moment ago: the
committed entries it applies (written one Ready earlier) and the entries it sends a
follower that is a little behind. Serving those from memory skips a SQLite query and
the CRC check of rows this process wrote itself. The cache holds a contiguous run
``[base, base + len)`` ending at the last index, at most ``max_entries`` entries and
about ``max_bytes`` of data (up to 25% more between trims; the newest entry always
stays, however large); older reads go to SQLite as before. Not thread-safe: the
storage's users serialize access.
"""

from __future__ import annotations

from collections.abc import Sequence

from pgraft.core.types import Entry


class EntryCache:
    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._base = 1
        self._entries: list[Entry] = []
        self._bytes = 0

    def get(self, lo: int, hi: int) -> list[Entry] | None:
        """The entries ``[lo, hi)`` if all of them are cached, else None."""
        start = lo - self._base
        if start < 0 or hi - self._base > len(self._entries):
            return None
        return self._entries[start : hi - self._base]

    def append(self, entries: Sequence[Entry]) -> None:
        """``entries`` (contiguous) replace everything from their first index on."""
        first = entries[0].index
        keep = first - self._base
        if 0 <= keep <= len(self._entries):
            for e in self._entries[keep:]:
                self._bytes -= len(e.data)
            del self._entries[keep:]
        else:
            self._entries, self._bytes, self._base = [], 0, first
        self._entries.extend(entries)
        self._bytes += sum([len(e.data) for e in entries])
        self._trim()

    def _trim(self) -> None:
        """Back to the limits once 25% above them (trimming the front of a list costs
        a copy of the rest: do it now and then, not on every append)."""
        entries = self._entries
        if len(entries) * 4 <= self._max_entries * 5 and self._bytes * 4 <= self._max_bytes * 5:
            return
        drop = max(len(entries) - self._max_entries, 0)
        size = self._bytes - sum([len(e.data) for e in entries[:drop]])
        while size > self._max_bytes and drop < len(entries) - 1:
            size -= len(entries[drop].data)
            drop += 1
        del entries[:drop]
        self._base += drop
        self._bytes = size

    def compact(self, index: int) -> None:
        """Entries up to ``index`` were discarded."""
        drop = min(index + 1 - self._base, len(self._entries))
        if drop > 0:
            self._bytes -= sum([len(e.data) for e in self._entries[:drop]])
            del self._entries[:drop]
            self._base = index + 1

    def reset(self, base: int) -> None:
        """Forget everything; the next entry written will be ``base``."""
        self._entries, self._bytes, self._base = [], 0, base
