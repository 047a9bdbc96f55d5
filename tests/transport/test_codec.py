"""Codec: every message kind round-trips; the decoder accepts nothing malformed and
raises only RemoteProtocolError."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
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
from pgraft.transport.codec import decode_batch, encode_batch
from pgraft.transport.errors import LocalProtocolError, RemoteProtocolError

from .strategies import batches, messages_of

FUZZ = settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("kind", MESSAGE_TYPES, ids=lambda k: k.__name__)
def test_every_kind_round_trips(kind: type) -> None:
    @settings(max_examples=150, deadline=None)
    @given(messages_of(kind))
    def check(msg: Message) -> None:
        assert decode_batch(encode_batch([msg])) == [msg]

    check()


@given(batches)
@settings(max_examples=300, deadline=None)
def test_batches_round_trip_in_order(batch: list[Message]) -> None:
    assert decode_batch(encode_batch(batch)) == batch


def test_encoding_is_compact() -> None:
    hb = Heartbeat(cluster_id=7, frm=1, to=2, term=3, commit=10)
    assert encode_batch([hb]) == msgpack.packb([[5, 7, 1, 2, 3, 10, b""]], use_bin_type=True)
    assert len(encode_batch([hb])) == 10  # 2 array headers, 6 small ints, empty bin


def test_empty_batch_is_caller_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        encode_batch([])


def test_unencodable_value_is_caller_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        encode_batch([Heartbeat(cluster_id=1 << 64, frm=1, to=2, term=3, commit=0)])


def _raw(*messages: list[object]) -> bytes:
    return msgpack.packb(list(messages), use_bin_type=True)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xc1",  # never-used msgpack byte
        _raw(),  # empty batch
        msgpack.packb({"a": 1}),  # not an array
        _raw([99, 1, 1, 2, 3]),  # unknown kind
        _raw([True, 1, 1, 2, 3]),  # bool is not a kind tag
        _raw([8, 1, 1, 2]),  # TimeoutNow missing term
        _raw([8, 1, 1, 2, 3, 4]),  # TimeoutNow with an extra field
        _raw([8, 1, 0, 2, 3]),  # frm 0 is nobody
        _raw([8, -1, 1, 2, 3]),  # negative cluster id
        _raw([8, 1.0, 1, 2, 3]),  # float
        _raw([8, True, 1, 2, 3]),  # bool is not an int
        _raw([5, 1, 1, 2, 3, 0, "text"]),  # str is not bytes
        _raw([2, 1, 1, 2, 3, 1, 0]),  # int is not bool
        _raw([3, 1, 1, 2, 3, 5, 1, [[1, 7, 0, b""]], 0]),  # entry index != prev_index + 1
        _raw([3, 1, 1, 2, 3, 5, 1, [[1, 6, 2, b""]], 0]),  # unknown entry type
        _raw([3, 1, 1, 2, 3, 5, 1, [[1, 6, 0]], 0]),  # short entry
        _raw([7, 1, 1, 2, 3, [[0, 0, [1, 1], []], b""]]),  # duplicate voter
        _raw([7, 1, 1, 2, 3, [[0, 0, [1], [1]], b""]]),  # voter and learner
        _raw([7, 1, 1, 2, 3, [[0, 0, [0], []], b""]]),  # node id 0
        _raw([8, 1, 1, 2, 3]) + b"\x00",  # trailing bytes
        msgpack.packb([msgpack.ExtType(5, b"x")]),  # extension type
        b"\x91" * 5000,  # deep nesting
    ],
)
def test_malformed_payloads_are_rejected(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_batch(payload)


def test_strict_fields_accept_the_valid_neighbours() -> None:
    snap = Snapshot(SnapshotMeta(5, 2, ConfState(frozenset({1, 2}), frozenset({3}))), b"img")
    msgs: list[Message] = [
        InstallSnapshot(1, 1, 2, 3, snap),
        AppendEntries(1, 1, 2, 3, 5, 1, (Entry(3, 6), Entry(3, 7, data=b"x")), 6),
        VoteRequest(1 << 63, 1, 2, (1 << 64) - 1, 0, 0, pre_vote=True),
    ]
    assert decode_batch(encode_batch(msgs)) == msgs


def _decodes_or_rejects(payload: bytes) -> None:
    try:
        decoded = decode_batch(payload)
    except RemoteProtocolError:
        return
    # Whatever decodes is a valid batch: it must survive a round trip unchanged.
    assert decode_batch(encode_batch(decoded)) == decoded


@given(st.binary(max_size=200))
@FUZZ
def test_fuzz_arbitrary_bytes(payload: bytes) -> None:
    _decodes_or_rejects(payload)


def _corpus() -> list[bytes]:
    """One valid payload per kind (with entries, snapshots and contexts filled in)."""
    snap = Snapshot(SnapshotMeta(9, 2, ConfState(frozenset({1, 2}), frozenset({3}))), b"img")
    entries = (Entry(2, 6, data=b"abc"), Entry(2, 7, EntryType.CONF_CHANGE, b"\x00" * 9))
    kinds: list[Message] = [
        VoteRequest(42, 1, 2, 3, 7, 2, pre_vote=True),
        VoteResponse(42, 2, 1, 3, reject=False),
        AppendEntries(42, 1, 2, 3, 5, 2, entries, 6),
        AppendResponse(42, 2, 1, 3, 7, reject=True, hint_index=4, hint_term=1),
        Heartbeat(42, 1, 2, 3, 6, b"ctx"),
        HeartbeatResponse(42, 2, 1, 3, b"ctx"),
        InstallSnapshot(42, 1, 2, 3, snap),
        TimeoutNow(42, 1, 2, 3),
        Propose(42, 2, 1, 0, (Entry(0, 0, data=b"p"),)),
        ReadIndexRequest(42, 2, 1, 0, b"r"),
        ReadIndexResponse(42, 1, 2, 3, b"r", 7),
        TransferLeader(42, 2, 1, 0, 3),
        CommitNotice(42, 1, 2, 3, 6),
    ]
    assert {type(m) for m in kinds} == set(MESSAGE_TYPES)
    return [encode_batch([m]) for m in kinds] + [encode_batch(kinds)]


def _mutate(draw: st.DrawFn, data: bytearray) -> bytes:
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and data:
            del data[pos]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


@st.composite
def mutated_corpus(draw: st.DrawFn) -> bytes:
    return _mutate(draw, bytearray(draw(st.sampled_from(_corpus()))))


@st.composite
def mutated_generated(draw: st.DrawFn) -> bytes:
    return _mutate(draw, bytearray(encode_batch(draw(batches))))


@given(mutated_corpus())
@FUZZ
def test_fuzz_mutated_valid_payloads(payload: bytes) -> None:
    _decodes_or_rejects(payload)


@given(mutated_generated())
@settings(max_examples=400, deadline=None)
def test_fuzz_mutated_generated_payloads(payload: bytes) -> None:
    _decodes_or_rejects(payload)


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(1 << 63), (1 << 64) - 1)
    | st.floats()
    | st.binary(max_size=8)
    | st.text(max_size=8)
)


@given(st.recursive(_SCALARS, lambda c: st.lists(c, max_size=9), max_leaves=20))
@settings(max_examples=600, deadline=None)
def test_fuzz_well_formed_msgpack_of_any_shape(value: object) -> None:
    _decodes_or_rejects(msgpack.packb([value, [value]], use_bin_type=True))
