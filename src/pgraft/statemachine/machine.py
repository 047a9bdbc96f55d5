"""``StateMachine``: what committed entries do, stored beside the log.

Theory of operation
-------------------
The state machine's tables (``tables.py``) live in the storage's SQLite database, so
applying a batch of committed entries and advancing the applied index is ONE
transaction: either both happen or neither. That makes apply idempotent across
crashes: entries at or below the applied index are skipped, and a crash in the
middle of a batch rolls the whole batch back. Two ways to run it:

* ``apply(entries)``: its own fsynced transaction;
* ``storage.save_ready(..., applied_updates=batch)`` with ``batch =
  sm.batch(ready.committed_entries)``: inside the Ready's transaction, so one fsync
  covers persisting and applying; ``batch.results`` holds the results afterwards.

Entry effects (docs/contracts.md §4): a NORMAL entry carries a command (``commands``)
or is empty (the leader's no-op); a CONF_CHANGE entry assigns a member's role, with
address and port taken from its msgpack context ``{"address", "port"}``. The
configuration after each change is tracked here with the core's rule (each change
assigns one member's role) and stored with the applied index; it is what
``initial_state`` reports after a restart.

A "log" command with a fencing term other than its entry's term is not appended
(result kind "fenced"): the term an entry lands in is only known when it commits.

A malformed entry must not stop the node (every replica sees the same bytes and
makes the same choice): it is applied as a no-op and, if a request id can be found
in it, its result carries the error. An index gap, on the other hand, is a bug in the
caller and raises ``StateMachineError``.

Results are keyed by request id so the node can answer the proposer wherever its
entry landed. ``Result.reply`` is the control API's result (docs/contracts.md §3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import msgpack

from pgraft.core.types import ConfChange, ConfChangeType, ConfState, Entry, EntryType
from pgraft.statemachine import commands, image, tables
from pgraft.statemachine.commands import CommandError, CompareAndSet, Delete, LogAppend, Put
from pgraft.storage import CorruptionError, DurableStorage

VOTER: Final = "voter"
LEARNER: Final = "learner"


class StateMachineError(Exception):
    """The caller broke the apply protocol (an index gap); the node must stop."""


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one applied command."""

    index: int
    kind: str  # "log", "put", "del", "cas"; "invalid" (malformed); "fenced" (log, wrong term)
    reply: object  # JSON-ready; None when ``error`` is set
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LogRecord:
    index: int
    term: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Member:
    node_id: int
    address: str
    port: int
    role: str  # VOTER or LEARNER


class ApplyBatch:
    """Applies entries when called inside the storage's transaction (``save_ready``'s
    ``applied_updates``); ``results`` is filled in then."""

    def __init__(self, sm: StateMachine, entries: Sequence[Entry]) -> None:
        self._sm = sm
        self._entries = entries
        self.results: dict[bytes, Result] = {}

    def __call__(self) -> None:
        self.results = self._sm.apply_in_transaction(self._entries)


class StateMachine:
    """The replicated user log, key-value map and membership of one node."""

    def __init__(self, storage: DurableStorage) -> None:
        self._storage = storage
        self._conn = storage.connection
        if not tables.current(self._conn):
            with storage.transaction():
                tables.create(self._conn)
        storage.attach(self)

    @property
    def last_applied(self) -> int:
        return self._storage.applied

    # ------------------------------------------------------------------ apply

    def apply(self, entries: Sequence[Entry]) -> dict[bytes, Result]:
        """Apply committed ``entries`` in one fsynced transaction; see
        ``apply_in_transaction``."""
        with self._storage.transaction():
            return self.apply_in_transaction(entries)

    def batch(self, entries: Sequence[Entry]) -> ApplyBatch:
        return ApplyBatch(self, entries)

    def apply_in_transaction(self, entries: Sequence[Entry]) -> dict[bytes, Result]:
        """Apply the entries above the applied index, in order, inside the current
        transaction, and advance the applied index. Returns results by request id.
        Raises ``StateMachineError`` if an entry would leave a gap."""
        applied = self._storage.applied
        conf = self._storage.conf_state
        results: dict[bytes, Result] = {}
        log_rows: list[tuple[int, int, bytes, bytes, int]] = []
        for e in entries:
            if e.index <= applied:
                continue
            if e.index != applied + 1:
                raise StateMachineError(f"entry {e.index} applied after {applied}: gap")
            if e.type == EntryType.CONF_CHANGE:
                conf = self._conf_change(e, conf)
            elif e.data:
                rid, result = self._command(e, log_rows)
                if rid:
                    results[rid] = result
            applied = e.index
        if log_rows:  # one statement for the batch; no other command reads sm_log
            self._conn.executemany(
                "INSERT INTO sm_log (idx, term, data, request_id, crc) VALUES (?, ?, ?, ?, ?)",
                log_rows,
            )
        self._storage.set_applied(applied, conf)
        return results

    def _command(
        self, e: Entry, log_rows: list[tuple[int, int, bytes, bytes, int]]
    ) -> tuple[bytes, Result]:
        """Apply one command; a log append adds its row to ``log_rows``."""
        try:
            cmd = commands.decode(e.data)
        except CommandError as exc:
            return commands.request_id_of(e.data), Result(e.index, "invalid", None, str(exc))
        match cmd:
            case LogAppend(rid, data, term) if term and term != e.term:
                error = f"term mismatch: the entry's term is {e.term}, not {term}"
                return rid, Result(e.index, "fenced", None, error)
            case LogAppend(rid, data):
                log_rows.append((e.index, e.term, data, rid, tables.log_crc(e.index, e.term, data)))
                return rid, Result(e.index, "log", e.index)
            case Put(rid, key, value):
                self._set(key, value, e.index)
                return rid, Result(e.index, "put", e.index)
            case Delete(rid, key):
                existed = self._get(key)[0] is not None
                if existed:
                    self._set(key, None, e.index)
                return rid, Result(e.index, "del", {"deleted": existed, "index": e.index})
            case CompareAndSet(rid, key, expected, value):
                current = self._get(key)[0]
                ok = current == expected
                if ok:
                    self._set(key, value, e.index)
                reply = {"ok": ok, "value": value if ok else current, "index": e.index}
                return rid, Result(e.index, "cas", reply)
            case None:
                raise AssertionError("empty data is handled by the caller")

    def _set(self, key: str, value: str | None, index: int) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO sm_kv (key, value, idx, crc) VALUES (?, ?, ?, ?)",
            (key, value, index, tables.kv_crc(key, value, index)),
        )

    def _get(self, key: str) -> tuple[str | None, int]:
        row = self._conn.execute(
            "SELECT value, idx, crc FROM sm_kv WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None, 0
        value, idx, crc = row
        if tables.kv_crc(key, value, idx) != crc:
            raise CorruptionError(self._storage.path, f"key-value row {key!r} fails its CRC")
        return value, int(idx)

    def _conf_change(self, e: Entry, conf: ConfState) -> ConfState:
        try:
            cc = ConfChange.decode(e.data)
        except ValueError:
            return conf  # malformed: no member to assign a role to
        nid = cc.node_id
        voters, learners = set(conf.voters), set(conf.learners)
        voters.discard(nid)
        learners.discard(nid)
        if cc.type == ConfChangeType.REMOVE_NODE:
            self._conn.execute("DELETE FROM sm_members WHERE node_id = ?", (nid,))
            return ConfState(frozenset(voters), frozenset(learners))
        role = VOTER if cc.type == ConfChangeType.ADD_NODE else LEARNER
        (voters if role == VOTER else learners).add(nid)
        address, port = _context_address(cc.context)
        old = self.members().get(nid)
        if port <= 0 and old is not None:  # no address given: keep the known one
            address, port = old.address, old.port
        self._conn.execute(
            "INSERT OR REPLACE INTO sm_members (node_id, address, port, role, crc)"
            " VALUES (?, ?, ?, ?, ?)",
            (nid, address, port, role, tables.member_crc(nid, address, port, role)),
        )
        return ConfState(frozenset(voters), frozenset(learners))

    # ------------------------------------------------------------------ reads

    def kv_get(self, key: str) -> tuple[str | None, int]:
        """(value or None, index of the entry that last changed the key or 0)."""
        return self._get(key)

    def log_read(
        self, lo: int, hi: int, limit: int, max_bytes: int | None = None
    ) -> list[LogRecord]:
        """User log records with ``lo <= index <= hi``, at most ``limit``, in index
        order; with ``max_bytes``, the records stop once their data reaches that many
        bytes (always at least one record). Raises ``CorruptionError`` if a record
        fails its CRC."""
        rows = self._conn.execute(
            "SELECT idx, term, data, crc FROM sm_log WHERE idx BETWEEN ? AND ?"
            " ORDER BY idx LIMIT ?",
            (lo, hi, max(limit, 0)),
        )
        out: list[LogRecord] = []
        size = 0
        try:
            for idx, term, data, crc in rows:
                if max_bytes is not None and out and size + len(data) > max_bytes:
                    break
                if tables.log_crc(idx, term, data) != crc:
                    raise CorruptionError(
                        self._storage.path, f"user log record {idx} fails its CRC"
                    )
                out.append(LogRecord(idx, term, data))
                size += len(data)
        finally:
            rows.close()  # never leave a read statement open on the shared connection
        return out

    def has_user_data(self) -> bool:
        """True once any user log record or key was ever applied (tombstones count)."""
        row = self._conn.execute(
            "SELECT EXISTS (SELECT 1 FROM sm_log) OR EXISTS (SELECT 1 FROM sm_kv)"
        ).fetchone()
        return bool(row[0])

    def members(self) -> dict[int, Member]:
        """Every member; raises ``CorruptionError`` if a row fails its CRC."""
        members = {}
        for nid, address, port, role, crc in self._conn.execute(
            "SELECT node_id, address, port, role, crc FROM sm_members"
        ).fetchall():
            if tables.member_crc(nid, address, port, role) != crc:
                raise CorruptionError(self._storage.path, f"member row {nid} fails its CRC")
            members[nid] = Member(nid, address, port, role)
        return members

    # ------------------------------------------------------------------ snapshots

    def snapshot_image(self) -> bytes:
        """An image of the current state (as of ``last_applied``); see ``image``."""
        return image.build(self._conn, self._storage.path)

    def restore(self, data: bytes) -> None:
        """Replace the state with an image (``b""``: empty). Called by the storage
        inside its transaction (``save_ready`` with a snapshot, ``reset``), so the
        state and the applied index move together. Raises ``ImageError``."""
        image.restore(self._conn, data)


def _context_address(context: bytes) -> tuple[str, int]:
    """(address, port) from a conf change context; ("", 0) when absent or invalid."""
    try:
        obj = msgpack.unpackb(context, raw=False) if context else None
    except (ValueError, TypeError, msgpack.UnpackException):
        return "", 0
    if not isinstance(obj, dict):
        return "", 0
    address, port = obj.get("address"), obj.get("port")
    if isinstance(address, str) and isinstance(port, int) and 0 < port < 65536:
        return address, port
    return "", 0
