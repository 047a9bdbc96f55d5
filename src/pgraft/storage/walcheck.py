"""Checks that SQLite's write-ahead log still holds everything it acknowledged.

Theory of operation
-------------------
SQLite validates its WAL with a cumulative checksum and treats the first frame that
fails it as the end of the log: every later frame, fsynced and acknowledged
transactions included, is silently dropped at recovery. A deleted WAL is worse: the
database simply opens as of its last checkpoint. For a Raft node either means a term,
a vote or acknowledged entries (or the whole identity) quietly vanish, so both are
checked *before* SQLite sees the files:

Damaged frames (``check_wal``). Each frame's checksum is seeded with the previous
frame's, so after a damaged frame the chain is continued from the stored (or the
recomputed) checksum of the damaged one. With ``synchronous=FULL`` each transaction is
fsynced before the next begins, so damage is legitimate only in the *last*
transaction (a crash while it was being written, possibly with its frames reordered
on disk). A valid frame of a later transaction after a damaged one, i.e. a valid
non-padding frame following a valid commit frame that follows the damage, proves
that an fsynced transaction was lost: ``CorruptionError``.

Missing WAL (``OpenMarker``). ``<db>-open`` exists, fsynced, while a ``DurableStorage``
has the database open; a clean close first checkpoints the WAL into the database
(``wal_checkpoint(TRUNCATE)``, which fsyncs the database) and only then removes the
marker. A marker without a WAL at the next open means the WAL was lost after a crash:
``CorruptionError``. (An empty WAL is accepted: SQLite creates it empty at open.)

Not detected: a WAL deleted together with the marker, or a database file replaced by
an older copy of itself.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Final

from pgraft.storage.errors import CorruptionError

_HEADER: Final = struct.Struct(">IIIIIIII")
_FRAME: Final = struct.Struct(">IIIIII")
_MAGIC: Final = (0x377F0682, 0x377F0683)  # low bit: checksums over big-endian words
_MASK: Final = 0xFFFFFFFF


def _checksum(data: bytes, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & _MASK
        s1 = (s1 + words[i + 1] + s0) & _MASK
    return s0, s1


def check_wal(db: Path) -> None:
    """Raises ``CorruptionError`` (naming the WAL) when a damaged frame is followed by
    frames of a later, hence fsynced, transaction. A missing or short WAL passes."""
    wal = Path(f"{db}-wal")
    try:
        raw = wal.read_bytes()
    except FileNotFoundError:
        return
    if len(raw) < _HEADER.size:
        return
    magic, _version, page, _seq, salt1, salt2, c0, c1 = _HEADER.unpack_from(raw)
    if magic not in _MAGIC or page < 512 or page & (page - 1):
        return  # not a WAL SQLite would use: it ignores it, nothing was ever acknowledged
    big = bool(magic & 1)
    damaged = _checksum(raw[:24], 0, 0, big) != (c0, c1)
    seeds = [(c0, c1)] if not damaged else [(c0, c1), _checksum(raw[:24], 0, 0, big)]
    first_bad = 0 if damaged else -1
    after_commit: bytes | None = None  # the valid commit frame seen after the damage
    size = _FRAME.size + page
    for n, off in enumerate(range(_HEADER.size, len(raw) - size + 1, size), start=1):
        pgno, commit, fsalt1, fsalt2, f0, f1 = _FRAME.unpack_from(raw, off)
        if (fsalt1, fsalt2) != (salt1, salt2):
            return  # a frame of an earlier WAL generation: the end of this one
        body = raw[off : off + 8] + raw[off + _FRAME.size : off + size]
        sums = [_checksum(body, s0, s1, big) for s0, s1 in seeds]
        valid = (f0, f1) in sums
        if not valid and first_bad < 0:
            first_bad = n
        if valid and first_bad >= 0:
            frame = raw[off : off + 8] + raw[off + _FRAME.size : off + size]
            if after_commit is not None and frame != after_commit:
                raise CorruptionError(
                    wal,
                    f"write-ahead log frame {first_bad} is damaged but later committed"
                    f" transactions follow it (page {pgno} in frame {n}); SQLite would"
                    " silently drop them",
                )
            if commit and after_commit is None:
                after_commit = frame
        seeds = [(f0, f1)] if valid else [(f0, f1), *sums]


class OpenMarker:
    """``<db>-open``: present (and fsynced) while the database is open; see above."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.path = Path(f"{db}-open")

    def check(self) -> None:
        """Raises ``CorruptionError`` when the last run did not close cleanly and its
        WAL is gone."""
        if self.path.exists() and not Path(f"{self.db}-wal").exists():
            raise CorruptionError(
                self.db,
                f"its write-ahead log {self.db.name}-wal is missing after an unclean"
                f" shutdown ({self.path.name} exists): committed state would be lost",
            )

    def set(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(self.db.parent)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        _fsync_dir(self.db.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
