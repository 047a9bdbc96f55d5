"""Plain data of the Raft core: identifiers, log entries, state records and messages.

Theory of operation
-------------------
Everything the core consumes or produces is an immutable value defined here. Peers
exchange *messages*: one frozen dataclass per kind, all sharing the header fields
``cluster_id``, ``frm``, ``to`` and ``term``. ``Message`` is the union of the kinds; code
that dispatches on it uses ``match`` with ``assert_never`` so a new kind cannot be
forgotten. The transport layer (``pgraft.transport.codec``) turns these values into
msgpack and back; nothing here knows about bytes on a wire except
``ConfChange.encode``/``decode``, because a configuration change travels *inside* a log
entry and the core itself must read it when the entry commits.

Invariants are written next to the fields they constrain.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NewType

NodeId = NewType("NodeId", int)
"""A member's identity, > 0. 0 means "nobody" (no vote, no leader)."""
Term = NewType("Term", int)
Index = NewType("Index", int)

NO_NODE = NodeId(0)


class RaftError(Exception):
    """Root of every error the core raises."""


class ProposalDropped(RaftError):
    """A proposal could not be accepted now (no known leader, transfer in progress,
    a membership change already pending, or this node was removed). Retry later."""


class StorageError(RaftError):
    """Root of the errors a ``Storage`` implementation raises."""


class Compacted(StorageError):
    """The requested index lies at or before the storage's first index (compacted)."""


class Unavailable(StorageError):
    """The requested index lies beyond the storage's last index."""


class ConfigError(RaftError):
    """The ``Config`` given to the core is invalid (caller misuse)."""


class Role(IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


class EntryType(IntEnum):
    NORMAL = 0
    """Application data; an empty ``data`` is the leader's no-op."""
    CONF_CHANGE = 1
    """``data`` is ``ConfChange.encode()``."""


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int  # > 0
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


class ConfChangeType(IntEnum):
    ADD_NODE = 0
    """Add a voter, or promote a learner to voter."""
    ADD_LEARNER = 1
    """Add a non-voting member (receives the log, never votes or counts)."""
    REMOVE_NODE = 2


_CC_HEADER = struct.Struct(">BQ")


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A single-server membership change. ``context`` is opaque to the core (the node
    stores the member's address there)."""

    type: ConfChangeType
    node_id: int
    context: bytes = b""

    def encode(self) -> bytes:
        return _CC_HEADER.pack(int(self.type), self.node_id) + self.context

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        """Raises ``ValueError`` on malformed input."""
        if len(data) < _CC_HEADER.size:
            raise ValueError("conf change too short")
        kind, node_id = _CC_HEADER.unpack_from(data)
        return cls(ConfChangeType(kind), node_id, bytes(data[_CC_HEADER.size :]))


@dataclass(frozen=True, slots=True)
class ConfState:
    voters: frozenset[int] = frozenset()
    learners: frozenset[int] = frozenset()  # disjoint from voters


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message that depends on it is sent."""

    term: int = 0
    vote: int = 0  # NO_NODE when no vote was cast in ``term``
    commit: int = 0  # never decreases


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    meta: SnapshotMeta = field(default_factory=SnapshotMeta)
    data: bytes = b""  # opaque state-machine image


# ---------------------------------------------------------------- messages
# Header fields on every message: cluster_id, frm, to, term.


@dataclass(frozen=True, slots=True)
class VoteRequest:
    """RequestVote, or its PreVote probe (``pre_vote``) which changes no state."""

    cluster_id: int
    frm: int
    to: int
    term: int  # for a pre-vote: the term the sender *would* campaign in
    last_log_index: int
    last_log_term: int
    pre_vote: bool = False
    transfer: bool = False  # campaign caused by TimeoutNow: ignore the leader lease


@dataclass(frozen=True, slots=True)
class VoteResponse:
    cluster_id: int
    frm: int
    to: int
    term: int
    reject: bool
    pre_vote: bool = False


@dataclass(frozen=True, slots=True)
class AppendEntries:
    cluster_id: int
    frm: int
    to: int
    term: int
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int


@dataclass(frozen=True, slots=True)
class AppendResponse:
    """On success ``index`` is the follower's match index. On reject ``index`` is the
    rejected ``prev_index`` and (``hint_index``, ``hint_term``) is the follower's
    conflict hint: its last index <= prev_index and the term there."""

    cluster_id: int
    frm: int
    to: int
    term: int
    index: int
    reject: bool = False
    hint_index: int = 0
    hint_term: int = 0


@dataclass(frozen=True, slots=True)
class Heartbeat:
    cluster_id: int
    frm: int
    to: int
    term: int
    commit: int  # min(leader commit, follower match)
    context: bytes = b""  # ReadIndex round this heartbeat confirms


@dataclass(frozen=True, slots=True)
class CommitNotice:
    """The leader's commit index for a replicating follower that has nothing to
    receive: unlike an empty AppendEntries it is not answered (the leader learns
    nothing from the answer), which saves a message each way per commit."""

    cluster_id: int
    frm: int
    to: int
    term: int
    commit: int  # min(leader commit, follower match)


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    cluster_id: int
    frm: int
    to: int
    term: int
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    cluster_id: int
    frm: int
    to: int
    term: int
    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Leadership transfer: campaign now, bypassing PreVote and the lease."""

    cluster_id: int
    frm: int
    to: int
    term: int


@dataclass(frozen=True, slots=True)
class Propose:
    """A follower forwarding client proposals to the leader (term 0: not a term claim)."""

    cluster_id: int
    frm: int
    to: int
    term: int
    entries: tuple[Entry, ...]  # index/term 0: the leader assigns them


@dataclass(frozen=True, slots=True)
class ReadIndexRequest:
    """A follower forwarding a ReadIndex request to the leader (term 0)."""

    cluster_id: int
    frm: int
    to: int
    term: int
    context: bytes


@dataclass(frozen=True, slots=True)
class ReadIndexResponse:
    cluster_id: int
    frm: int
    to: int
    term: int
    context: bytes
    index: int


@dataclass(frozen=True, slots=True)
class TransferLeader:
    """A follower forwarding a leadership-transfer request to the leader (term 0)."""

    cluster_id: int
    frm: int
    to: int
    term: int
    target: int


Message = (
    VoteRequest
    | VoteResponse
    | AppendEntries
    | AppendResponse
    | Heartbeat
    | HeartbeatResponse
    | CommitNotice
    | InstallSnapshot
    | TimeoutNow
    | Propose
    | ReadIndexRequest
    | ReadIndexResponse
    | TransferLeader
)

MESSAGE_TYPES: tuple[type[Message], ...] = (
    VoteRequest,
    VoteResponse,
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    CommitNotice,
    InstallSnapshot,
    TimeoutNow,
    Propose,
    ReadIndexRequest,
    ReadIndexResponse,
    TransferLeader,
)


# ---------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class ReadState:
    """A ReadIndex request completed: once this node has applied ``index`` a read
    issued with ``context`` may be served from local state (linearizable)."""

    index: int
    context: bytes


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state worth reporting (not persisted)."""

    leader: int
    role: Role


@dataclass(frozen=True, slots=True)
class Ready:
    """One batch of work for the runtime, handled in this order:

    1. Persist, atomically and durably (fsync): ``snapshot`` (if any), then
       ``entries`` (an append that first truncates the stored log from
       ``entries[0].index``), then ``hard_state`` (if not None).
    2. Then, and only then, send ``messages``.
    3. Apply ``committed_entries`` to the state machine (they are already durable;
       they may overlap ``entries`` only if the runtime persisted those first), and
       answer ``read_states`` once the applied index reaches their index.
    4. Call ``RawNode.advance(ready)``; configuration changes among
       ``committed_entries`` take effect there.
    """

    soft_state: SoftState | None
    hard_state: HardState | None
    entries: tuple[Entry, ...]
    snapshot: Snapshot | None
    committed_entries: tuple[Entry, ...]
    messages: tuple[Message, ...]
    read_states: tuple[ReadState, ...]

    @property
    def must_sync(self) -> bool:
        """True when step 1 needs an fsync before step 2 (term, vote or log changed)."""
        return bool(self.entries) or self.snapshot is not None or self.hard_state is not None
