"""Quorum arithmetic against a deliberately naive reference."""

from __future__ import annotations

from itertools import combinations

from hypothesis import given
from hypothesis import strategies as st

from pgraft.core.quorum import VoteResult, committed_index, has_quorum, vote_result


def naive_committed(voters: set[int], match: dict[int, int]) -> int:
    """The largest index i such that some majority subset of voters all have >= i."""
    if not voters:
        return 0
    q = len(voters) // 2 + 1
    best = 0
    for subset in combinations(sorted(voters), q):
        best = max(best, min(match.get(v, 0) for v in subset))
    return best


def naive_vote(voters: set[int], votes: dict[int, bool]) -> VoteResult:
    if not voters:
        return VoteResult.LOST
    q = len(voters) // 2 + 1
    yes = sum(1 for v in voters if votes.get(v) is True)
    maybe = sum(1 for v in voters if v not in votes)
    if yes >= q:
        return VoteResult.WON
    if yes + maybe >= q:
        return VoteResult.PENDING
    return VoteResult.LOST


voter_sets = st.sets(st.integers(1, 9), max_size=7)


@given(voter_sets, st.dictionaries(st.integers(1, 12), st.integers(0, 50)))
def test_committed_index_matches_reference(voters: set[int], match: dict[int, int]) -> None:
    assert committed_index(voters, match) == naive_committed(voters, match)


@given(voter_sets, st.dictionaries(st.integers(1, 12), st.booleans()))
def test_vote_result_matches_reference(voters: set[int], votes: dict[int, bool]) -> None:
    assert vote_result(voters, votes) == naive_vote(voters, votes)


@given(voter_sets, st.sets(st.integers(1, 12)))
def test_has_quorum(voters: set[int], members: set[int]) -> None:
    expected = bool(voters) and len(voters & members) > len(voters) // 2
    assert has_quorum(voters, members) == expected


def test_examples() -> None:
    assert committed_index({1, 2, 3}, {1: 5, 2: 3, 3: 9}) == 5
    assert committed_index({1, 2, 3, 4}, {1: 5, 2: 3, 3: 9, 4: 1}) == 3
    assert committed_index({1}, {1: 7}) == 7
    assert committed_index(set(), {1: 7}) == 0
    assert vote_result({1, 2, 3}, {1: True}) == VoteResult.PENDING
    assert vote_result({1, 2, 3}, {1: True, 2: False, 3: False}) == VoteResult.LOST
    assert vote_result({1, 2}, {1: True, 2: False}) == VoteResult.LOST
