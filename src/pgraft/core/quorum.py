"""Majority arithmetic: the commit index a configuration's voters agree on, and the
outcome of an election.

Theory of operation
-------------------
With ``n`` voters a quorum is any ``n // 2 + 1`` of them. An index is committed once a
quorum has it, so the committed index is the ``(n // 2 + 1)``-th largest match index
among the voters (voters without a known match count as 0). An election is won once a
quorum granted, lost once so many rejected that a quorum can no longer grant, and
pending otherwise. An empty configuration commits nothing and wins nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import IntEnum


class VoteResult(IntEnum):
    PENDING = 0
    LOST = 1
    WON = 2


def committed_index(voters: Collection[int], match: Mapping[int, int]) -> int:
    """The largest index that a majority of ``voters`` has (0 for no voters)."""
    n = len(voters)
    if n == 0:
        return 0
    if n == 1:
        for v in voters:
            return match.get(v, 0)
    srt = sorted([match.get(v, 0) for v in voters], reverse=True)
    return srt[n // 2]


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    """Tally ``votes`` (voter -> granted) among ``voters``; other voters are missing."""
    n = len(voters)
    if n == 0:
        return VoteResult.LOST
    q = n // 2 + 1
    granted = rejected = 0
    for v in voters:
        got = votes.get(v)
        if got is True:
            granted += 1
        elif got is False:
            rejected += 1
    if granted >= q:
        return VoteResult.WON
    if n - rejected < q:
        return VoteResult.LOST
    return VoteResult.PENDING


def has_quorum(voters: Collection[int], members: Collection[int]) -> bool:
    """Whether ``members`` include a majority of ``voters``."""
    n = len(voters)
    return n > 0 and sum(1 for v in voters if v in members) >= n // 2 + 1
