"""``TermCache``: the in-memory terms of the log's tail.

Behaviour (get/append/trim/compact/reset), the reader-safety property the runtime
relies on (a ``(base, terms)`` pair a reader captured keeps answering what it did: old
lists are only ever extended at the end, never shifted or truncated), and a model test
against a plain dict of the log.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pgraft.storage.termcache import TermCache


def _cached(cache: TermCache, lo: int, hi: int) -> dict[int, int]:
    """``{index: term}`` for every index in ``[lo, hi]`` the cache answers."""
    out = {}
    for i in range(lo, hi + 1):
        t = cache.get(i)
        if t is not None:
            out[i] = t
    return out


def _snapshot(cache: TermCache) -> tuple[int, list[int], list[int]]:
    """What a reader in another thread holds: the pair itself, plus a copy of the
    list's contents at capture time."""
    base, terms = cache._run
    return base, terms, list(terms)


def _assert_unshifted(captured: tuple[int, list[int], list[int]]) -> None:
    base, terms, before = captured
    assert terms[: len(before)] == before, (
        f"a list a reader holds (base {base}) was changed: {before} -> {terms[: len(before)]}"
    )


# ---------------------------------------------------------------- behaviour


def test_get_inside_and_outside_the_run() -> None:
    cache = TermCache(5, [1, 1, 2], capacity=10)
    assert cache.base == 5
    assert [cache.get(i) for i in range(3, 10)] == [None, None, 1, 1, 2, None, None]


def test_append_at_the_end_extends() -> None:
    cache = TermCache(1, [1, 1], capacity=10)
    cache.append(3, [2, 3])
    assert cache.base == 1
    assert _cached(cache, 0, 10) == {1: 1, 2: 1, 3: 2, 4: 3}


def test_append_inside_replaces_the_tail() -> None:
    cache = TermCache(1, [1, 1, 1, 1, 1], capacity=10)
    cache.append(3, [2])
    assert cache.base == 1
    assert _cached(cache, 0, 10) == {1: 1, 2: 1, 3: 2}  # 4 and 5 are gone


def test_append_at_the_base_replaces_everything() -> None:
    cache = TermCache(4, [1, 1, 1], capacity=10)
    cache.append(4, [3, 3])
    assert cache.base == 4
    assert _cached(cache, 0, 10) == {4: 3, 5: 3}


def test_append_with_no_terms_truncates() -> None:
    cache = TermCache(1, [1, 2, 3], capacity=10)
    cache.append(2, [])
    assert _cached(cache, 0, 10) == {1: 1}


def test_append_after_a_gap_restarts_the_run() -> None:
    cache = TermCache(1, [1, 1], capacity=10)
    cache.append(5, [2, 2])  # 3 and 4 are not known: the run restarts at 5
    assert cache.base == 5
    assert _cached(cache, 0, 10) == {5: 2, 6: 2}


def test_append_before_the_base_restarts_the_run() -> None:
    cache = TermCache(10, [1, 1, 1], capacity=10)
    cache.append(7, [4, 4])
    assert cache.base == 7
    assert _cached(cache, 0, 20) == {7: 4, 8: 4}


def test_trimmed_to_capacity_once_it_holds_twice_that() -> None:
    cache = TermCache(1, [], capacity=4)
    cache.append(1, [1] * 8)  # exactly 2x capacity: kept whole
    assert cache.base == 1
    assert len(_cached(cache, 0, 20)) == 8
    cache.append(9, [2])  # 9 > 8: trimmed to the last 4
    assert cache.base == 6
    assert _cached(cache, 0, 20) == {6: 1, 7: 1, 8: 1, 9: 2}


def test_one_long_append_is_trimmed_too() -> None:
    cache = TermCache(1, [], capacity=3)
    cache.append(1, range(1, 11))  # terms 1..10 at indexes 1..10
    assert cache.base == 8
    assert _cached(cache, 0, 20) == {8: 8, 9: 9, 10: 10}


def test_compact_drops_the_head() -> None:
    cache = TermCache(1, [1, 2, 3, 4], capacity=10)
    cache.compact(2)
    assert cache.base == 3
    assert _cached(cache, 0, 10) == {3: 3, 4: 4}
    cache.compact(1)  # below the base: nothing changes
    assert cache.base == 3
    assert _cached(cache, 0, 10) == {3: 3, 4: 4}


def test_compact_past_the_end_empties_and_continues_after_it() -> None:
    cache = TermCache(1, [1, 2], capacity=10)
    cache.compact(6)
    assert cache.base == 7
    assert _cached(cache, 0, 10) == {}
    cache.append(7, [5])  # the next entry after the compaction point extends the run
    assert _cached(cache, 0, 10) == {7: 5}


def test_reset() -> None:
    cache = TermCache(1, [1, 2, 3], capacity=10)
    cache.reset(20)
    assert cache.base == 20
    assert _cached(cache, 0, 30) == {}
    cache.append(20, [7])
    assert _cached(cache, 0, 30) == {20: 7}


# ---------------------------------------------------------------- reader safety


def test_extension_in_place_keeps_the_readers_pair_valid() -> None:
    cache = TermCache(1, [1, 1], capacity=10)
    captured = _snapshot(cache)
    cache.append(3, [2])
    _assert_unshifted(captured)
    assert cache._run[1] is captured[1]  # the documented fast path: no copy


def test_tail_replacement_leaves_the_readers_list_alone() -> None:
    cache = TermCache(1, [1, 1, 1, 1], capacity=10)
    captured = _snapshot(cache)
    cache.append(2, [5])
    _assert_unshifted(captured)
    assert captured[1] == [1, 1, 1, 1]
    assert _cached(cache, 0, 10) == {1: 1, 2: 5}


def test_trim_leaves_the_readers_list_alone() -> None:
    cache = TermCache(1, list(range(1, 9)), capacity=4)
    captured = _snapshot(cache)
    cache.append(9, [9])  # extends the captured list, then trims into a new one
    base, terms, before = captured
    assert terms[: len(before)] == before
    assert cache.base == 6
    # Every index the reader's pair covered still maps to its term.
    for pos in range(len(terms)):
        assert terms[pos] == base + pos


def test_compact_leaves_the_readers_list_alone() -> None:
    cache = TermCache(1, [1, 2, 3, 4], capacity=10)
    captured = _snapshot(cache)
    cache.compact(2)
    _assert_unshifted(captured)
    assert captured[1] == [1, 2, 3, 4]


def test_reset_leaves_the_readers_list_alone() -> None:
    cache = TermCache(1, [1, 2, 3], capacity=10)
    captured = _snapshot(cache)
    cache.reset(1)
    _assert_unshifted(captured)
    assert captured[1] == [1, 2, 3]


def test_restart_after_a_gap_leaves_the_readers_list_alone() -> None:
    cache = TermCache(5, [1, 2], capacity=10)
    captured = _snapshot(cache)
    cache.append(2, [9])  # before the base
    cache.append(10, [9])  # after a gap
    _assert_unshifted(captured)
    assert captured[1] == [1, 2]


# ---------------------------------------------------------------- model


CAPACITY = 4

ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("append"),
            st.integers(0, 30),
            st.lists(st.integers(1, 5), max_size=12),
        ),
        st.tuples(st.just("compact"), st.integers(0, 30), st.just([])),
        st.tuples(st.just("reset"), st.integers(1, 30), st.just([])),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(1, 10), initial=st.lists(st.integers(1, 5), max_size=2 * CAPACITY), ops=ops
)
def test_against_a_dict_model(
    start: int, initial: list[int], ops: list[tuple[str, int, list[int]]]
) -> None:
    """The model is the log itself (``{index: term}``), its last index and ``low``, the
    lowest index the cache is obliged to know. The cache must:

    - never answer a term the log does not have at that index;
    - answer exactly a contiguous run ending at the log's last index;
    - know at least ``[max(low, last + 1 - capacity), last]``;
    - hold at most ``2 * capacity`` terms;
    - never change a list a reader may still hold, except by appending at its end.
    """
    cache = TermCache(start, initial, CAPACITY)
    log = {start + i: t for i, t in enumerate(initial)}
    last = start + len(initial) - 1
    low = start
    top = 60  # every index the ops can reach is below this
    readers: list[tuple[int, list[int], list[int]]] = []

    for kind, arg, terms in ops:
        readers.append(_snapshot(cache))
        if kind == "append":
            first = arg
            known_from = max(low, last + 1 - CAPACITY)  # the cache knows at least this far
            # Contiguous with that: it keeps what it knew below ``first`` (the terms it
            # trimmed earlier are gone for good); otherwise it starts over at ``first``.
            low = known_from if known_from <= first <= last + 1 else first
            for i in [i for i in log if i >= first]:
                del log[i]
            log.update({first + k: t for k, t in enumerate(terms)})
            last = first + len(terms) - 1
            cache.append(first, terms)
        elif kind == "compact":
            for i in [i for i in log if i <= arg]:
                del log[i]
            low = max(low, arg + 1)
            last = max(last, arg)
            cache.compact(arg)
        else:
            log.clear()
            low, last = arg, arg - 1
            cache.reset(arg)

        for r in readers:
            _assert_unshifted(r)
        known = _cached(cache, -5, top)
        for i, t in known.items():
            assert log.get(i) == t, f"index {i}: cache says {t}, log {log.get(i)}"
        if known:
            lo, hi = min(known), max(known)
            assert sorted(known) == list(range(lo, hi + 1)), "not a contiguous run"
            assert hi == last, f"run ends at {hi}, log at {last}"
            assert cache.base == lo
        assert len(known) <= 2 * CAPACITY
        must = range(max(low, last + 1 - CAPACITY), last + 1)
        missing = [i for i in must if i not in known]
        assert not missing, f"cache forgot {missing} (low {low}, last {last}, known {known})"
        assert all(known[i] == log[i] for i in must)
