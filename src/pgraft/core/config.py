"""Configuration of one Raft node (see docs/contracts.md section 1).

Time is counted in ticks: the runtime calls ``RawNode.tick()`` at a fixed period, a
leader sends heartbeats every ``heartbeat_tick`` ticks and a follower that heard nothing
from a leader for a randomized timeout in ``[election_tick, 2 * election_tick)`` starts
an election.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgraft.core.types import ConfigError


@dataclass(frozen=True, slots=True)
class Config:
    node_id: int
    cluster_id: int
    election_tick: int = 10
    heartbeat_tick: int = 1
    max_msg_entries: int = 1024
    max_msg_bytes: int = 1 << 20
    max_inflight: int = 256
    pre_vote: bool = True
    check_quorum: bool = True
    max_uncommitted_bytes: int = 64 << 20  # leader refuses proposals beyond this
    applied: int = 0  # last applied index at restart

    def __post_init__(self) -> None:
        if self.node_id <= 0:
            raise ConfigError("node_id must be > 0")
        if self.heartbeat_tick <= 0:
            raise ConfigError("heartbeat_tick must be > 0")
        if self.election_tick <= self.heartbeat_tick:
            raise ConfigError("election_tick must be greater than heartbeat_tick")
        if self.max_msg_entries <= 0 or self.max_msg_bytes <= 0:
            raise ConfigError("max_msg_entries and max_msg_bytes must be > 0")
        if self.max_inflight <= 0:
            raise ConfigError("max_inflight must be > 0")
        if self.max_uncommitted_bytes <= 0:
            raise ConfigError("max_uncommitted_bytes must be > 0")
        if self.applied < 0:
            raise ConfigError("applied must be >= 0")
