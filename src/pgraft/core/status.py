"""A read-only picture of a node for operators and the control API."""

from __future__ import annotations

from dataclasses import dataclass, field

from pgraft.core.progress import ProgressState
from pgraft.core.types import ConfState, Role


@dataclass(frozen=True, slots=True)
class ProgressStatus:
    """The leader's view of one member's log."""

    match: int
    next: int
    state: ProgressState
    recent_active: bool
    inflight: int
    is_learner: bool = False


@dataclass(frozen=True, slots=True)
class Status:
    id: int
    term: int
    vote: int
    commit: int
    applied: int
    role: Role
    leader: int  # 0 when unknown
    conf_state: ConfState
    progress: dict[int, ProgressStatus] = field(default_factory=dict)  # leaders only
    lead_transferee: int = 0
    messages_processed: int = 0
    heartbeats_sent: int = 0
    elections_started: int = 0
    dropped_cluster_mismatch: int = 0
    first_index: int = 0
    last_index: int = 0

    @property
    def conf(self) -> ConfState:
        """Alias of ``conf_state`` (the name docs/contracts.md uses)."""
        return self.conf_state
