"""Hypothesis strategies generating every core message kind (valid on the wire)."""

from __future__ import annotations

from hypothesis import strategies as st

from pgraft.core.types import (
    MESSAGE_TYPES,
    AppendEntries,
    AppendResponse,
    CommitNotice,
    ConfState,
    Entry,
    EntryType,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    Propose,
    ReadIndexRequest,
    ReadIndexResponse,
    Snapshot,
    SnapshotMeta,
    TimeoutNow,
    TransferLeader,
    VoteRequest,
    VoteResponse,
)

U64 = (1 << 64) - 1
u64 = st.one_of(st.integers(0, 1000), st.integers(0, U64))
node = st.integers(1, U64)
small_bytes = st.binary(max_size=64)


def entries(first_index: int | None = None) -> st.SearchStrategy[tuple[Entry, ...]]:
    def build(items: list[tuple[int, int, EntryType, bytes]]) -> tuple[Entry, ...]:
        return tuple(
            Entry(term, first_index + i if first_index is not None else index, kind, data)
            for i, (term, index, kind, data) in enumerate(items)
        )

    item = st.tuples(u64, u64, st.sampled_from(EntryType), small_bytes)
    return st.lists(item, max_size=5).map(build)


@st.composite
def conf_states(draw: st.DrawFn) -> ConfState:
    ids = draw(st.lists(node, max_size=7, unique=True))
    split = draw(st.integers(0, len(ids)))
    return ConfState(frozenset(ids[:split]), frozenset(ids[split:]))


snapshots = st.builds(
    Snapshot, st.builds(SnapshotMeta, u64, u64, conf_states()), st.binary(max_size=256)
)


@st.composite
def append_entries(draw: st.DrawFn) -> AppendEntries:
    prev_index = draw(st.integers(0, U64 - 10))
    return AppendEntries(
        draw(u64),
        draw(node),
        draw(node),
        draw(u64),
        prev_index,
        draw(u64),
        draw(entries(prev_index + 1)),
        draw(u64),
    )


HEAD = (u64, node, node, u64)  # cluster_id, frm, to, term


_BY_KIND: dict[type, st.SearchStrategy[Message]] = {
    VoteRequest: st.builds(VoteRequest, *HEAD, u64, u64, st.booleans(), st.booleans()),
    VoteResponse: st.builds(VoteResponse, *HEAD, st.booleans(), st.booleans()),
    AppendEntries: append_entries(),
    AppendResponse: st.builds(AppendResponse, *HEAD, u64, st.booleans(), u64, u64),
    Heartbeat: st.builds(Heartbeat, *HEAD, u64, small_bytes),
    HeartbeatResponse: st.builds(HeartbeatResponse, *HEAD, small_bytes),
    InstallSnapshot: st.builds(InstallSnapshot, *HEAD, snapshots),
    TimeoutNow: st.builds(TimeoutNow, *HEAD),
    Propose: st.builds(Propose, *HEAD, entries()),
    ReadIndexRequest: st.builds(ReadIndexRequest, *HEAD, small_bytes),
    ReadIndexResponse: st.builds(ReadIndexResponse, *HEAD, small_bytes, u64),
    TransferLeader: st.builds(TransferLeader, *HEAD, u64),
    CommitNotice: st.builds(CommitNotice, *HEAD, u64),
}
assert set(_BY_KIND) == set(MESSAGE_TYPES), "a message kind has no strategy"


def messages_of(kind: type) -> st.SearchStrategy[Message]:
    return _BY_KIND[kind]


messages: st.SearchStrategy[Message] = st.one_of(*_BY_KIND.values())
batches = st.lists(messages, min_size=1, max_size=8)
