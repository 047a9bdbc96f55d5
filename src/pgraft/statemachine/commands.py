"""Encoding of the commands carried in NORMAL log entries (docs/contracts.md §4).

Theory of operation
-------------------
Entry data is one msgpack array ``[kind, request_id, payload...]``:

====== =========================== =========================================
kind   payload                     effect when applied
====== =========================== =========================================
"log"  data (bin) [, term (int)]   append a user log record at the entry's index;
                                   with term != 0 only if the entry's term equals it
"put"  key (str), value (str)      set a key
"del"  key (str)                   delete a key
"cas"  key, expected (str|nil),    set ``key`` to ``value`` if its current value
       value (str)                 equals ``expected`` (nil: the key is absent)
====== =========================== =========================================

``request_id`` is 16 random bytes chosen by the proposer; the result of applying the
entry is reported under it, wherever the entry lands in the log. Empty data is the
leader's no-op and decodes to ``None``.

Decoding is strict: exactly one msgpack value, an array of the right length, the
right types (no str/bytes coercion), nothing trailing. Anything else raises
``CommandError`` (a ``ValueError``); the state machine applies such an entry as a
no-op with a recorded error, because every replica must make the same decision.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import msgpack

T = TypeVar("T")

REQUEST_ID_BYTES: Final = 16
MAX_COMMAND_BYTES: Final = 64 << 20


class CommandError(ValueError):
    """Entry data that is not a valid command."""


@dataclass(frozen=True, slots=True)
class LogAppend:
    request_id: bytes
    data: bytes
    term: int = 0  # fencing guard: 0 = any term, else the entry's term must equal it


@dataclass(frozen=True, slots=True)
class Put:
    request_id: bytes
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Delete:
    request_id: bytes
    key: str


@dataclass(frozen=True, slots=True)
class CompareAndSet:
    request_id: bytes
    key: str
    expected: str | None  # None: the key must be absent
    value: str


Command = LogAppend | Put | Delete | CompareAndSet


def new_request_id() -> bytes:
    return os.urandom(REQUEST_ID_BYTES)


def encode(cmd: Command) -> bytes:
    """The entry data for ``cmd``. Raises ``CommandError`` on a malformed request id."""
    if not isinstance(cmd.request_id, bytes) or len(cmd.request_id) != REQUEST_ID_BYTES:
        raise CommandError(f"request_id must be {REQUEST_ID_BYTES} bytes")
    body: list[Any]
    match cmd:
        case LogAppend(rid, data, 0):
            body = ["log", rid, data]
        case LogAppend(rid, data, term):
            body = ["log", rid, data, term]
        case Put(rid, key, value):
            body = ["put", rid, key, value]
        case Delete(rid, key):
            body = ["del", rid, key]
        case CompareAndSet(rid, key, expected, value):
            body = ["cas", rid, key, expected, value]
    packed: bytes = msgpack.packb(body, use_bin_type=True)
    return packed


_ARITY: Final = {"log": (3, 4), "put": (4,), "del": (3,), "cas": (5,)}


def request_id_of(data: bytes) -> bytes:
    """The request id of entry data, or ``b""`` if there is none to find."""
    try:
        obj = _unpack(data)
    except CommandError:
        return b""
    if isinstance(obj, list) and len(obj) >= 2 and _is_rid(obj[1]):
        return bytes(obj[1])
    return b""


def decode(data: bytes) -> Command | None:
    """The command in NORMAL entry data; ``None`` for the no-op (empty data).

    Raises ``CommandError`` with a message saying what is wrong."""
    if not data:
        return None
    obj = _unpack(data)
    if not isinstance(obj, list) or not obj:
        raise CommandError("command is not a non-empty msgpack array")
    kind = obj[0]
    if not isinstance(kind, str) or kind not in _ARITY:
        raise CommandError(f"unknown command kind {kind!r}")
    if len(obj) not in _ARITY[kind]:
        arity = " or ".join(str(n) for n in _ARITY[kind])
        raise CommandError(f"{kind!r} takes {arity} fields, got {len(obj)}")
    rid = obj[1]
    if not _is_rid(rid):
        raise CommandError(f"request_id must be {REQUEST_ID_BYTES} bytes")
    args = obj[2:]
    if kind == "log":
        term = _typed(args[1], int, "term") if len(args) == 2 else 0
        if isinstance(term, bool) or not 0 <= term < 1 << 63:
            raise CommandError(f"term must be a non-negative integer, got {term!r}")
        return LogAppend(rid, _typed(args[0], bytes, "data"), term)
    key = _typed(args[0], str, "key")
    if kind == "put":
        return Put(rid, key, _typed(args[1], str, "value"))
    if kind == "del":
        return Delete(rid, key)
    expected = None if args[1] is None else _typed(args[1], str, "expected")
    return CompareAndSet(rid, key, expected, _typed(args[2], str, "value"))


def _unpack(data: bytes) -> object:
    if len(data) > MAX_COMMAND_BYTES:
        raise CommandError(f"command of {len(data)} bytes exceeds {MAX_COMMAND_BYTES}")
    try:
        obj: object = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise CommandError(f"undecodable command ({type(exc).__name__}: {exc})") from None
    return obj


def _is_rid(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == REQUEST_ID_BYTES


def _typed(value: object, kind: type[T], name: str) -> T:
    if not isinstance(value, kind):
        raise CommandError(f"{name} must be {kind.__name__}, got {type(value).__name__}")
    return value
