"""Snapshot images of the state machine: a compressed, chunked msgpack stream.

Theory of operation
-------------------
An image is a zlib stream (level 1: cheap, and logs of text shrink several times)
of a concatenation of msgpack values, never one giant value, so neither side holds
more than one chunk of decoded rows at a time (decompression is bounded too):

    ["pgraft-sm-image", 1]                     header (magic, version)
    [section, [row, row, ...]]                 up to CHUNK_ROWS rows, repeated
    ["end", {section: row count, ...}]         trailer: a cut-off image is detected

Sections are the state machine's tables: ``kv`` (key, value or nil tombstone, index
of last change), ``members`` (node id, address, port, role) and ``log`` (index,
term, data, request id). The whole user log is included: it is the replicated log
users read back by index on every node, so a follower restored from an image must
be able to serve it too. Row CRCs are not carried, but every row's CRC is checked
while the image is built (a damaged row must not be laundered into fresh, valid CRCs
on every node it is shipped to) and recomputed by the restoring side.

``restore`` replaces the tables' contents inside the caller's transaction; a
malformed image raises ``ImageError`` and the transaction rolls back untouched.

Limit: the image travels in one transport frame (64 MiB by default), so the user log
it carries must compress below that.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final, TypeGuard

import msgpack

from pgraft.statemachine.tables import kv_crc, log_crc, member_crc
from pgraft.storage import CorruptionError

MAGIC: Final = "pgraft-sm-image"
VERSION: Final = 1
CHUNK_ROWS: Final = 1000
FEED_BYTES: Final = 1 << 20

_SECTIONS: Final[dict[str, tuple[str, Callable[..., int], int]]] = {
    # section: (query ending with the row's crc, crc function, its argument count)
    "kv": ("SELECT key, value, idx, crc FROM sm_kv ORDER BY key", kv_crc, 3),
    "members": (
        "SELECT node_id, address, port, role, crc FROM sm_members ORDER BY node_id",
        member_crc,
        4,
    ),
    "log": ("SELECT idx, term, data, request_id, crc FROM sm_log ORDER BY idx", log_crc, 3),
}


class ImageError(ValueError):
    """The bytes are not a valid state machine image."""


def build(conn: sqlite3.Connection, path: Path) -> bytes:
    """The image of the tables' current contents (read in one statement each).
    Raises ``CorruptionError`` (naming ``path``, the database) if a row fails its CRC."""
    packer = msgpack.Packer(use_bin_type=True)
    z = zlib.compressobj(level=1)
    out = bytearray(z.compress(packer.pack([MAGIC, VERSION])))
    counts: dict[str, int] = {}
    for section, (query, crc, width) in _SECTIONS.items():
        cur = conn.execute(query)
        counts[section] = 0
        while rows := cur.fetchmany(CHUNK_ROWS):
            for r in rows:
                if crc(*r[:width]) != r[-1]:
                    raise CorruptionError(path, f"{section} row {r[0]!r} fails its CRC")
            out += z.compress(packer.pack([section, [list(r[:-1]) for r in rows]]))
            counts[section] += len(rows)
    out += z.compress(packer.pack(["end", counts]))
    out += z.flush()
    return bytes(out)


def _is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 63


def _kv(row: list[object]) -> tuple[object, ...]:
    key, value, idx = row
    if not isinstance(key, str) or not (value is None or isinstance(value, str)):
        raise ImageError("kv row has wrong types")
    if not _is_int(idx):
        raise ImageError("kv row has a bad index")
    return (key, value, idx, kv_crc(key, value, idx))


def _member(row: list[object]) -> tuple[object, ...]:
    node_id, address, port, role = row
    if not (_is_int(node_id) and isinstance(address, str) and _is_int(port)):
        raise ImageError("members row has wrong types")
    if role not in ("voter", "learner"):
        raise ImageError(f"members row has unknown role {role!r}")
    return (node_id, address, port, role, member_crc(node_id, address, port, role))


def _log(row: list[object]) -> tuple[object, ...]:
    idx, term, data, rid = row
    if not (_is_int(idx) and _is_int(term)):
        raise ImageError("log row has a bad index or term")
    if not (isinstance(data, bytes) and isinstance(rid, bytes)):
        raise ImageError("log row has wrong types")
    return (idx, term, data, rid, log_crc(idx, term, data))


_INSERT: Final[dict[str, tuple[str, int, Callable[[list[object]], tuple[object, ...]]]]] = {
    "kv": ("INSERT INTO sm_kv (key, value, idx, crc) VALUES (?, ?, ?, ?)", 3, _kv),
    "members": (
        "INSERT INTO sm_members (node_id, address, port, role, crc) VALUES (?, ?, ?, ?, ?)",
        4,
        _member,
    ),
    "log": (
        "INSERT INTO sm_log (idx, term, data, request_id, crc) VALUES (?, ?, ?, ?, ?)",
        4,
        _log,
    ),
}


def _plain(image: bytes) -> Iterator[bytes]:
    """The decompressed stream in pieces of at most FEED_BYTES."""
    z = zlib.decompressobj()
    view = memoryview(image)
    try:
        for at in range(0, len(view), FEED_BYTES):
            piece = z.decompress(view[at : at + FEED_BYTES], FEED_BYTES)
            while piece:
                yield piece
                piece = z.decompress(z.unconsumed_tail, FEED_BYTES)
    except zlib.error as exc:
        raise ImageError(f"undecodable image ({exc})") from None
    if not z.eof or z.unused_data:
        raise ImageError("image is cut off or followed by garbage")


def _values(image: bytes) -> Iterator[object]:
    unpacker = msgpack.Unpacker(raw=False, use_list=True, strict_map_key=True)
    size = 0
    for piece in _plain(image):
        unpacker.feed(piece)
        size += len(piece)
        while True:
            try:
                value = unpacker.unpack()
            except msgpack.OutOfData:
                break
            except (ValueError, TypeError, msgpack.UnpackException) as exc:
                raise ImageError(f"undecodable image ({type(exc).__name__}: {exc})") from None
            yield value
    if unpacker.tell() != size:
        raise ImageError("image ends inside a value")


def restore(conn: sqlite3.Connection, image: bytes) -> None:
    """Replace the tables' contents with ``image`` (``b""``: empty tables). Must run
    inside a transaction. Raises ``ImageError``; sqlite3 errors propagate."""
    for table in ("sm_kv", "sm_members", "sm_log"):
        conn.execute(f"DELETE FROM {table}")
    if not image:
        return
    values = _values(image)
    if next(values, None) != [MAGIC, VERSION]:
        raise ImageError("not a pgraft state machine image (bad header)")
    counts = dict.fromkeys(_INSERT, 0)
    for value in values:
        if not (isinstance(value, list) and len(value) == 2):
            raise ImageError("malformed image chunk")
        section, body = value
        if section == "end":
            if body != counts or next(values, None) is not None:
                raise ImageError(f"image trailer {body!r} does not match contents {counts!r}")
            return
        if section not in _INSERT or not isinstance(body, list):
            raise ImageError(f"unknown image section {section!r}")
        sql, width, check = _INSERT[section]
        rows = []
        for row in body:
            if not (isinstance(row, list) and len(row) == width):
                raise ImageError(f"{section} row has the wrong shape")
            rows.append(check(row))
        try:
            conn.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise ImageError(f"{section} rows conflict: {exc}") from None
        counts[section] += len(rows)
    raise ImageError("image is cut off (no trailer)")
