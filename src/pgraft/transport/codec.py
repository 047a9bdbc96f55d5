"""msgpack encoding of core messages, with a strict decoder.

Theory of operation
-------------------
A frame payload is one msgpack array: a *batch* of messages for one peer (typically
everything one ``Ready`` produced for it). Each message is a positional array whose
first element is a small integer kind tag, followed by the header fields
(``cluster_id, frm, to, term``) and then the kind's own fields in declaration order::

    [tag, cluster_id, frm, to, term, field...]
    Entry        -> [term, index, type, data]
    Snapshot     -> [[index, term, [voters...], [learners...]], data]

Byte strings travel as msgpack ``bin``; nothing is ever pickled. Positional arrays keep
the encoding compact (no field names on the wire) and cheap to build.

The decoder trusts nothing: every field is checked for its exact type (``bool`` is not
an ``int`` here, ``str`` is not ``bytes``) and range (unsigned 64-bit integers, node ids
> 0, a known entry type, disjoint voter/learner sets, contiguous entry indexes in an
``AppendEntries``). Anything else raises ``RemoteProtocolError`` -- and nothing else: the
fuzz tests check "decode, or raise RemoteProtocolError, never anything else".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, assert_never

import msgpack

from pgraft.core.types import (
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
from pgraft.transport.errors import LocalProtocolError, RemoteProtocolError

U64_MAX = (1 << 64) - 1


def _fail(what: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"malformed message: {what}")


def _u64(value: Any) -> int:
    if type(value) is int and 0 <= value <= U64_MAX:
        return value
    raise _fail(f"expected an unsigned 64-bit integer, got {type(value).__name__}")


def _node(value: Any) -> int:
    if type(value) is int and 0 < value <= U64_MAX:
        return value
    raise _fail("expected a node id (integer > 0)")


def _bytes(value: Any) -> bytes:
    if type(value) is bytes:
        return value
    raise _fail(f"expected bytes, got {type(value).__name__}")


def _array(value: Any, length: int, what: str) -> list[Any]:
    if type(value) is list and len(value) == length:
        return value
    raise _fail(f"{what} must be an array of {length} elements")


_ENTRY_TYPES = {int(t): t for t in EntryType}


def _entries(value: Any) -> tuple[Entry, ...]:
    # The hot path of replication: checks inlined rather than one call per field.
    if type(value) is not list:
        raise _fail("entries must be an array")
    out = []
    for item in value:
        if type(item) is not list or len(item) != 4:
            raise _fail("an entry must be an array of 4 elements")
        term, index, etype, data = item
        if not (
            type(term) is int
            and type(index) is int
            and type(etype) is int
            and type(data) is bytes
            and 0 <= term <= U64_MAX
            and 0 <= index <= U64_MAX
            and etype in _ENTRY_TYPES
        ):
            raise _fail("invalid entry field")
        out.append(Entry(term, index, _ENTRY_TYPES[etype], data))
    return tuple(out)


def _node_set(value: Any) -> frozenset[int]:
    if type(value) is not list:
        raise _fail("a node set must be an array")
    nodes = frozenset(_node(item) for item in value)
    if len(nodes) != len(value):
        raise _fail("duplicate node id in a node set")
    return nodes


def _snapshot(value: Any) -> Snapshot:
    meta, data = _array(value, 2, "snapshot")
    index, term, voters, learners = _array(meta, 4, "snapshot meta")
    conf = ConfState(_node_set(voters), _node_set(learners))
    if conf.voters & conf.learners:
        raise _fail("a node is both voter and learner")
    return Snapshot(SnapshotMeta(_u64(index), _u64(term), conf), _bytes(data))


# tag -> (class, codes of the fields after the header, in declaration order):
# u = unsigned 64-bit int, b = bool, y = bytes, E = entries, S = snapshot.
_KINDS: dict[int, tuple[type[Message], str]] = {
    1: (VoteRequest, "uubb"),
    2: (VoteResponse, "bb"),
    3: (AppendEntries, "uuEu"),
    4: (AppendResponse, "ubuu"),
    5: (Heartbeat, "uy"),
    6: (HeartbeatResponse, "y"),
    7: (InstallSnapshot, "S"),
    8: (TimeoutNow, ""),
    9: (Propose, "E"),
    10: (ReadIndexRequest, "y"),
    11: (ReadIndexResponse, "yu"),
    12: (TransferLeader, "u"),
    13: (CommitNotice, "u"),
}


def _wire_entries(entries: Sequence[Entry]) -> list[Any]:
    return [[e.term, e.index, int(e.type), e.data] for e in entries]


def _wire(m: Message) -> list[Any]:
    """The positional array of one message (the inverse of ``_decode_message``)."""
    head = [m.cluster_id, m.frm, m.to, m.term]
    match m:
        case VoteRequest():
            return [1, *head, m.last_log_index, m.last_log_term, m.pre_vote, m.transfer]
        case VoteResponse():
            return [2, *head, m.reject, m.pre_vote]
        case AppendEntries():
            return [3, *head, m.prev_index, m.prev_term, _wire_entries(m.entries), m.commit]
        case AppendResponse():
            return [4, *head, m.index, m.reject, m.hint_index, m.hint_term]
        case Heartbeat():
            return [5, *head, m.commit, m.context]
        case HeartbeatResponse():
            return [6, *head, m.context]
        case InstallSnapshot():
            meta = m.snapshot.meta
            conf = meta.conf_state
            wire_meta = [meta.index, meta.term, sorted(conf.voters), sorted(conf.learners)]
            return [7, *head, [wire_meta, m.snapshot.data]]
        case TimeoutNow():
            return [8, *head]
        case Propose():
            return [9, *head, _wire_entries(m.entries)]
        case ReadIndexRequest():
            return [10, *head, m.context]
        case ReadIndexResponse():
            return [11, *head, m.context, m.index]
        case TransferLeader():
            return [12, *head, m.target]
        case CommitNotice():
            return [13, *head, m.commit]
        case _:
            assert_never(m)


def _decode_message(value: Any) -> Message:
    # Checks are inlined (not one call per field): this runs for every message received.
    if type(value) is not list or len(value) < 5:
        raise _fail("a message must be an array of at least 5 elements")
    tag, cluster_id, frm, to, term = value[0], value[1], value[2], value[3], value[4]
    spec = _KINDS.get(tag) if type(tag) is int else None
    if spec is None:
        raise _fail("unknown message kind")
    cls, codes = spec
    if len(value) != 5 + len(codes):
        raise _fail(f"{cls.__name__} needs {4 + len(codes)} fields")
    if not (
        type(cluster_id) is int
        and type(frm) is int
        and type(to) is int
        and type(term) is int
        and 0 <= cluster_id <= U64_MAX
        and 0 < frm <= U64_MAX
        and 0 < to <= U64_MAX
        and 0 <= term <= U64_MAX
    ):
        raise _fail("invalid header (cluster_id, frm, to, term)")
    fields = value[5:]
    for i, code in enumerate(codes):
        x = fields[i]
        if code == "u":
            if type(x) is not int or not 0 <= x <= U64_MAX:
                raise _fail(f"{cls.__name__} field {i + 5} must be an unsigned 64-bit integer")
        elif code == "b":
            if type(x) is not bool:
                raise _fail(f"{cls.__name__} field {i + 5} must be a boolean")
        elif code == "y":
            if type(x) is not bytes:
                raise _fail(f"{cls.__name__} field {i + 5} must be bytes")
        elif code == "E":
            fields[i] = _entries(x)
        else:
            fields[i] = _snapshot(x)
    msg = cls(cluster_id, frm, to, term, *fields)
    if isinstance(msg, AppendEntries):
        for offset, entry in enumerate(msg.entries, start=1):
            if entry.index != msg.prev_index + offset:
                raise _fail("AppendEntries entries are not contiguous after prev_index")
    return msg


def encode_batch(messages: Sequence[Message]) -> bytes:
    """Encode a non-empty batch of messages as one frame payload.

    Raises ``LocalProtocolError`` if the batch is empty or a value cannot be encoded
    (e.g. an integer outside 0..2**64-1)."""
    if not messages:
        raise LocalProtocolError("a batch must hold at least one message")
    try:
        payload: bytes = msgpack.packb([_wire(m) for m in messages], use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise LocalProtocolError(f"cannot encode message: {exc}") from exc
    return payload


def unpack(payload: bytes) -> Any:
    """msgpack-decode one payload strictly (no extension types, no trailing bytes).

    Raises ``RemoteProtocolError`` on anything malformed."""
    try:
        return msgpack.unpackb(
            payload, raw=False, use_list=True, strict_map_key=True, ext_hook=_reject_ext
        )
    except RemoteProtocolError:
        raise
    except Exception as exc:  # msgpack raises many kinds on malformed input
        raise RemoteProtocolError(f"invalid msgpack: {type(exc).__name__}") from exc


def _reject_ext(code: int, data: bytes) -> Any:
    raise RemoteProtocolError("msgpack extension types are not allowed")


def decode_batch(payload: bytes) -> list[Message]:
    """Decode one frame payload into its messages.

    Raises ``RemoteProtocolError`` (and nothing else) on malformed input."""
    batch = unpack(payload)
    if type(batch) is not list or not batch:
        raise _fail("a batch must be a non-empty array")
    return [_decode_message(item) for item in batch]
