"""DurableStorage against the core's in-memory reference (``MemoryStorage``): random
sequences of appends (with conflicting suffixes), commits and compactions, with
reopens in between, must read back identically."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storage_helpers import open_store

from pgraft.core import HardState, MemoryStorage
from pgraft.core.types import Entry
from pgraft.storage import DurableStorage

Op = tuple[str, int, int]
ops = st.lists(
    st.tuples(
        st.sampled_from(["append", "append", "commit", "compact", "reopen"]),
        st.integers(0, 12),
        st.integers(0, 2),
    ),
    max_size=25,
)


def _applied(d: DurableStorage, index: int) -> None:
    d.set_applied(index, d.conf_state)


def _same(d: DurableStorage, m: MemoryStorage) -> None:
    assert (d.first_index(), d.last_index()) == (m.first_index(), m.last_index())
    lo, hi = d.first_index(), d.last_index() + 1
    assert d.entries(lo, hi) == m.entries(lo, hi)
    assert [d.term(i) for i in range(lo - 1, hi)] == [m.term(i) for i in range(lo - 1, hi)]
    assert d.hard_state == m.hard_state


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_durable_matches_memory(sequence: list[Op]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        d, m = open_store(path), MemoryStorage()
        term = 1
        try:
            for kind, a, b in sequence:
                last, commit = m.last_index(), m.hard_state.commit
                if kind == "append":
                    first = max(commit + 1, m.first_index(), last + 1 - a)
                    term = max(term, m.term(first - 1)) + b
                    new = [
                        Entry(term, i, data=b"%d@%d" % (i, term))
                        for i in range(first, first + a % 5 + 1)
                    ]
                    d.save_ready(new, None, None)
                    m.append(new)
                elif kind == "commit" and last > commit:
                    hs = HardState(term, 0, min(last, commit + a + 1))
                    d.save_ready(
                        (), hs, None, applied_updates=functools.partial(_applied, d, hs.commit)
                    )
                    m.set_hard_state(hs)
                elif kind == "compact" and commit >= m.first_index():
                    index = max(m.first_index(), commit - a)
                    d.compact(index)
                    m.create_snapshot(index, m.snapshot().meta.conf_state, b"")
                    m.compact(index)
                elif kind == "reopen":
                    d.close()
                    d = open_store(path)
                _same(d, m)
        finally:
            d.close()
