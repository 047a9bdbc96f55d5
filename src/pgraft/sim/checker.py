"""Safety invariants, checked incrementally as the simulated nodes act.

Theory of operation
-------------------
Rather than rescanning every log after every step, the checker is told about each
observable act as it happens (a Ready persisted, a message sent, an entry applied,
a node elected) and keeps global "ground truth" tables. Each table makes one Raft
property a constant-time lookup:

- Election safety: ``leaders[term]`` is the one node that led ``term``.
- Log matching: ``log[(index, term)]`` is the (type, data, previous term) of the
  entry any node ever stored at that position. By induction on the index, two logs
  that agree on (index, term) agree on everything before it exactly when every
  position has one content and one predecessor term, so a second, different content
  at a known position is a violation.
- Leader completeness: ``committed[index]`` is the term of the entry known committed
  there (recorded when a node's commit index first covers it) and ``committed_in``
  the lowest term in which a node saw it committed; the log of a leader of a later
  term must hold it (or a snapshot covering it). A leader of an *earlier* term may
  still be elected afterwards (its votes were cast in its term) and may lack it.
- State machine safety: ``applied[index]`` is the (term, type, data) any node applied
  at ``index``, and ``digest[index]`` the running checksum of the applied prefix, so
  snapshots are checked too.
- Monotonicity and durability: a node's persisted term never decreases, its vote
  never changes within a term, its commit never decreases (also across restarts);
  a vote grant or an append acknowledgement may only be sent once what it promises
  is persisted (an acknowledgement of index i to the leader of term T: the entry that
  leader has at i, as seen in its AppendEntries; a grant for a term older than the
  persisted one is harmless, that term is over for the voter); a node never grants
  two candidates in one term, across restarts.
- Commit rule: when a leader's commit index moves, the entry there is of its term.
- Linearizable reads: ``reads[context]`` is the highest index known committed when
  the read began; the ReadIndex answer must not be below it.

A violation raises ``Violation``; the world turns it into a failure report.
"""

from __future__ import annotations

from pgraft.core.storage import Storage
from pgraft.core.types import (
    AppendEntries,
    AppendResponse,
    Compacted,
    Entry,
    HardState,
    Message,
    Unavailable,
    VoteRequest,
    VoteResponse,
)


class Violation(Exception):
    """A safety or liveness property failed; ``kind`` names the property."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class Checker:
    def __init__(self) -> None:
        self.leaders: dict[int, int] = {}
        self.log: dict[tuple[int, int], tuple[int, bytes, int]] = {}
        self.committed: dict[int, int] = {}
        self.committed_in: dict[int, int] = {}
        self.max_commit = 0
        self.applied: dict[int, tuple[int, int, bytes]] = {0: (0, 0, b"")}
        self.digest: dict[int, int] = {0: 0}
        self.grants: dict[tuple[int, int], int] = {}  # (voter, term) -> candidate
        self.leader_log: dict[tuple[int, int], int] = {}  # (leader term, index) -> entry term
        self.reads: dict[bytes, int] = {}
        self.reads_done = 0
        self.watch: dict[bytes, int] = {}  # data -> index where it was first applied

    # ------------------------------------------------------------ elections

    def on_leader(self, node: int, term: int) -> None:
        other = self.leaders.setdefault(term, node)
        if other != node:
            raise Violation("election-safety", f"term {term} has two leaders: {other} and {node}")

    def check_completeness(self, node: int, term: int, storage: Storage) -> None:
        """Every entry committed in a term before ``term`` must be in the log of
        ``node``, the new leader of ``term``."""
        snap = storage.snapshot().meta
        committed_in = self.committed_in
        for index, cterm in self.committed.items():
            if index < snap.index or committed_in[index] >= term:
                continue
            have = snap.term if index == snap.index else _term_or_none(storage, index)
            if have != cterm:
                raise Violation(
                    "leader-completeness",
                    f"leader {node} of term {term} has term {have} at index {index}, "
                    f"but an entry of term {cterm} was committed there",
                )

    # ------------------------------------------------------------ persistence

    def on_hard_state(self, node: int, old: HardState, new: HardState) -> None:
        if new.term < old.term:
            raise Violation("term-regress", f"node {node} term {old.term} -> {new.term}")
        if new.term == old.term and old.vote and new.vote != old.vote:
            raise Violation(
                "vote-changed", f"node {node} vote in term {new.term}: {old.vote} -> {new.vote}"
            )
        if new.commit < old.commit:
            raise Violation("commit-regress", f"node {node} commit {old.commit} -> {new.commit}")

    def on_restart(
        self, node: int, persisted: HardState, term: int, vote: int, commit: int
    ) -> None:
        if term < persisted.term or (term == persisted.term and vote != persisted.vote):
            raise Violation(
                "restart-state",
                f"node {node} restarted with term {term} vote {vote}, "
                f"but had persisted term {persisted.term} vote {persisted.vote}",
            )
        if commit < persisted.commit:
            raise Violation(
                "commit-regress", f"node {node} restarted with commit {commit} < {persisted.commit}"
            )

    def on_append(self, node: int, entries: tuple[Entry, ...], prev_term: int | None) -> None:
        log = self.log
        for e in entries:
            if prev_term is not None:
                key = (e.index, e.term)
                seen = log.get(key)
                mine = (int(e.type), e.data, prev_term)
                if seen is None:
                    log[key] = mine
                elif seen != mine:
                    raise Violation(
                        "log-matching",
                        f"node {node} stored {e!r} after term {prev_term}, but another log has "
                        f"(type, data, previous term) {seen!r} at index {e.index} term {e.term}",
                    )
            prev_term = e.term

    def on_commit(self, node: int, hs: HardState, old: int, storage: Storage) -> None:
        """``node``'s commit index moved from ``old`` to ``hs.commit`` in term ``hs.term``."""
        committed, committed_in = self.committed, self.committed_in
        new = hs.commit
        for index in range(max(old, storage.first_index() - 1) + 1, new + 1):
            term = _term_or_none(storage, index)
            if term is None:
                continue
            committed_in[index] = min(committed_in.get(index, hs.term), hs.term)
            known = committed.setdefault(index, term)
            if known != term:
                raise Violation(
                    "committed-changed",
                    f"node {node} committed term {term} at index {index}, "
                    f"where term {known} was committed before",
                )
        self.max_commit = max(self.max_commit, new)

    def on_leader_commit(self, node: int, hs: HardState, storage: Storage) -> None:
        """A leader advances its commit index only by counting replicas of an entry of
        its own term (Raft section 5.4.2); older entries commit implicitly."""
        term = _term_or_none(storage, hs.commit)
        if term != hs.term:
            raise Violation(
                "leader-commit-rule",
                f"leader {node} of term {hs.term} advanced its commit index to {hs.commit}, "
                f"an entry of term {term}",
            )

    # ------------------------------------------------------------ messages

    def on_send(self, node: int, msg: Message, hs: HardState, storage: Storage) -> None:
        """``hs`` and ``storage`` are what ``node`` has persisted when it sends ``msg``."""
        if isinstance(msg, VoteRequest | VoteResponse) and msg.pre_vote:
            return
        if msg.term > hs.term:
            raise Violation(
                "term-not-durable", f"node {node} sent {msg!r} with persisted term {hs.term}"
            )
        if isinstance(msg, VoteResponse) and not msg.reject:
            if hs.term == msg.term and hs.vote != msg.to:
                raise Violation(
                    "vote-not-durable",
                    f"node {node} granted {msg.to} in term {msg.term} "
                    f"but persisted term {hs.term} vote {hs.vote}",
                )
            other = self.grants.setdefault((node, msg.term), msg.to)
            if other != msg.to:
                raise Violation(
                    "double-vote", f"node {node} voted for {other} and {msg.to} in term {msg.term}"
                )
        elif isinstance(msg, AppendResponse) and not msg.reject:
            self._check_ack(node, msg, storage)
        elif isinstance(msg, AppendEntries):
            known = self.leader_log
            known[(msg.term, msg.prev_index)] = msg.prev_term
            for e in msg.entries:
                known[(msg.term, e.index)] = e.term

    def _check_ack(self, node: int, msg: AppendResponse, storage: Storage) -> None:
        """An acknowledgement of index i to the leader of term T promises that the
        persisted log holds, at i, the entry that leader has there."""
        last = storage.last_index()
        if msg.index > last:
            raise Violation(
                "ack-not-durable",
                f"node {node} acknowledged index {msg.index} to {msg.to} (term {msg.term}) "
                f"with last persisted index {last}",
            )
        want = self.leader_log.get((msg.term, msg.index))
        have = _term_or_none(storage, msg.index)
        if want is not None and have is not None and have != want:
            raise Violation(
                "ack-not-durable",
                f"node {node} acknowledged index {msg.index} to leader {msg.to} of term "
                f"{msg.term}, which has term {want} there, but persisted term {have}",
            )

    # ------------------------------------------------------------ state machine

    def on_apply(self, node: int, entry: Entry, digest: int) -> None:
        mine = (entry.term, int(entry.type), entry.data)
        seen = self.applied.setdefault(entry.index, mine)
        if seen != mine:
            raise Violation(
                "state-machine-safety",
                f"node {node} applied {mine!r} at index {entry.index}, another node {seen!r}",
            )
        self.on_digest(node, entry.index, digest)
        if entry.data in self.watch and not self.watch[entry.data]:
            self.watch[entry.data] = entry.index

    def on_digest(self, node: int, index: int, digest: int) -> None:
        seen = self.digest.setdefault(index, digest)
        if seen != digest:
            raise Violation(
                "state-machine-safety",
                f"node {node} state at index {index} has checksum {digest:#x}, "
                f"another node {seen:#x}",
            )

    # ------------------------------------------------------------ reads

    def begin_read(self, context: bytes) -> None:
        self.reads[context] = self.max_commit

    def on_read_state(self, node: int, index: int, context: bytes) -> None:
        floor = self.reads.get(context)
        if floor is None:
            raise Violation("read-unknown", f"node {node} got a read state for {context!r}")
        if index < floor:
            raise Violation(
                "linearizable-read",
                f"node {node} read {context!r} at index {index}, "
                f"but index {floor} was committed before the read began",
            )
        self.reads_done += 1


def _term_or_none(storage: Storage, index: int) -> int | None:
    try:
        return storage.term(index)
    except (Compacted, Unavailable):
        return None
