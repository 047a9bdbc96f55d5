"""The world behind the interaction transcripts: Raft nodes, a wire, and the commands.

Theory of operation
-------------------
``Env`` is a small deterministic world: several nodes (``transcript_node.Node``: a
``RawNode`` over ``MemoryStorage``, seeded with ``random.Random(node_id)``) and one FIFO
of messages "on the wire". Nothing moves unless a command says so: ``process-ready``
has a node persist its Ready (snapshot, entries, hard state, in that order), apply the
committed entries and advance, and puts the Ready's messages on the wire;
``deliver-msgs`` steps queued messages into their recipients; ``stabilize`` alternates
both until nothing changes. After every call into a node the harness compares its
(role, term, leader) and configuration with what it last printed and reports a change
as a line such as ``1 is now leader at term 2, leader 1``, so transcripts show state
transitions without depending on the core's log wording.

Commands (``N`` is a node id; ``k=v`` arguments are optional)::

    add-nodes COUNT voters=(1,2,3) learners=(4) index=K cluster-id=C pre-vote=B
              check-quorum=B election=E heartbeat=H max-inflight=I max-msg-entries=M
              max-uncommitted-bytes=U      new nodes get the next ids; without voters
                                           the storage is empty (a joining member);
                                           index=K bootstraps from a snapshot at K
    campaign N | tick N [COUNT] | tick-heartbeat N | tick-election N
    propose N DATA... | propose-conf-change N add=ID|learner=ID|remove=ID
    read-index N CTX | transfer-leadership N TARGET
    process-ready N... | stabilize [N...]
    deliver-msgs N... [from=ID] [type=Kind] [order=reversed] [limit=COUNT]
    drop-msgs [from=ID] [to=ID] [type=Kind] | dup-msgs [from=ID] [to=ID] [type=Kind]
    partition N... | heal
    crash N | restart N [applied=K] | compact N INDEX
    status N | raft-log N | raft-state | applied N | log-level none|all

``Kind`` is the message kind as printed (``App``, ``Vote``, ``Heartbeat``...);
``order=reversed`` delivers the selected messages newest first (reordering);
``limit`` delivers only the first COUNT of them (per recipient), leaving the rest queued.
``tick-heartbeat`` ticks ``heartbeat`` times. ``tick-election`` ticks until the node's
role or term changes, at most ``2*election-1`` times (the longest randomized election
timeout), so a follower surely times out and a CheckQuorum leader checks its quorum
exactly once. ``partition`` cuts the listed nodes off from the others; messages
crossing the cut are dropped (and printed as dropped) when delivery is attempted. A
crashed node keeps only what it persisted; messages to it are lost. ``log-level none``
hides output (errors still show) until ``log-level all``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import transcript_fmt as fmt
from transcript_node import Node

from pgraft.core import Config, RawNode
from pgraft.core.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Message,
    RaftError,
)

MAX_STABILIZE_ROUNDS = 200


class CommandError(Exception):
    """The transcript itself is wrong (unknown command, bad argument)."""


def _split(command: str) -> tuple[str, list[str], dict[str, str]]:
    words = command.split()
    pos = [w for w in words[1:] if "=" not in w]
    kw = dict(w.split("=", 1) for w in words[1:] if "=" in w)
    return words[0], pos, kw


def _ints(value: str) -> list[int]:
    return [int(v) for v in re.findall(r"\d+", value)]


def _bool(value: str) -> bool:
    if value not in ("true", "false"):
        raise CommandError(f"expected true/false, got {value!r}")
    return value == "true"


def _matches(m: Message, kw: dict[str, str], to: set[int] | None) -> bool:
    return (
        (to is None or m.to in to)
        and ("from" not in kw or m.frm == int(kw["from"]))
        and ("to" not in kw or m.to == int(kw["to"]))
        and ("type" not in kw or fmt.kind(m) == kw["type"])
    )


class Env:
    """Runs transcript commands; ``execute`` returns the output lines of one command."""

    def __init__(self) -> None:
        self.nodes: dict[int, Node] = {}
        self.wire: list[Message] = []
        self.cut: set[int] = set()
        self.out: list[str] = []
        self.indent = ""
        self.quiet = False
        self.handlers: dict[str, Callable[[list[str], dict[str, str]], None]] = {
            "add-nodes": self.add_nodes,
            "campaign": lambda p, k: self.call(p, lambda n: n.campaign()),
            "tick": self.tick,
            "tick-heartbeat": lambda p, k: self.tick_n(self._id(p), "heartbeat"),
            "tick-election": lambda p, k: self.tick_n(self._id(p), "election"),
            "propose": self.propose,
            "propose-conf-change": self.propose_conf_change,
            "read-index": lambda p, k: self.call(p, lambda n: n.read_index(p[1].encode())),
            "transfer-leadership": lambda p, k: self.call(
                p, lambda n: n.transfer_leadership(int(p[1]))
            ),
            "process-ready": lambda p, k: self.each(p, self.process_ready, "handling Ready"),
            "deliver-msgs": self.deliver_msgs,
            "stabilize": lambda p, k: self.stabilize([int(x) for x in p]),
            "drop-msgs": self.drop_msgs,
            "dup-msgs": self.dup_msgs,
            "partition": lambda p, k: self.cut.update(int(x) for x in p),
            "heal": lambda p, k: self.cut.clear(),
            "crash": lambda p, k: self.crash(self._id(p)),
            "restart": self.restart,
            "compact": self.compact,
            "status": lambda p, k: self.status(self._id(p)),
            "raft-log": lambda p, k: self.raft_log(self._id(p)),
            "raft-state": lambda p, k: self.raft_state(),
            "applied": lambda p, k: self.show_applied(self._id(p)),
            "log-level": self.log_level,
        }

    # ------------------------------------------------------------ plumbing

    def execute(self, command: str) -> list[str]:
        name, pos, kw = _split(command)
        handler = self.handlers.get(name)
        if handler is None:
            raise CommandError(f"unknown command {name!r}")
        self.out = []
        try:
            handler(pos, kw)
        except (IndexError, KeyError, ValueError) as exc:
            raise CommandError(f"{command!r}: {exc!r}") from exc
        return self.out

    def emit(self, line: str, always: bool = False) -> None:
        if always or not self.quiet:
            self.out.append(self.indent + line)

    def _id(self, pos: list[str]) -> int:
        node_id = int(pos[0])
        if node_id not in self.nodes:
            raise CommandError(f"no node {node_id}")
        return node_id

    def live(self, node_id: int) -> RawNode:
        raw = self.nodes[node_id].raw
        if raw is None:
            raise CommandError(f"node {node_id} is crashed")
        return raw

    def call(self, pos: list[str], fn: Callable[[RawNode], None]) -> None:
        node_id = self._id(pos)
        try:
            fn(self.live(node_id))
        except RaftError as exc:
            self.emit(f"error: {type(exc).__name__}: {exc}", always=True)
        self.note(node_id)

    def each(self, pos: list[str], fn: Callable[[int], None], what: str) -> None:
        for p in pos:
            node_id = self._id([p])
            if len(pos) > 1:
                self.emit(f"> {node_id} {what}")
            with self.indented(len(pos) > 1):
                fn(node_id)

    @contextmanager
    def indented(self, on: bool = True) -> Iterator[None]:
        """Indent what is emitted inside the block by two more spaces (when ``on``)."""
        saved = self.indent
        if on:
            self.indent += "  "
        try:
            yield
        finally:
            self.indent = saved

    def note(self, node_id: int) -> None:
        """Report a change of role, term, leader or configuration since last shown."""
        node = self.nodes[node_id]
        if node.raw is None:
            return
        st = node.raw.status()
        role = fmt.role(st.role)
        key = (role, st.term, st.leader, st.conf)
        if node.shown and node.shown[:3] != key[:3]:
            leader = st.leader or "none"
            self.emit(f"{node_id} is now {role} at term {st.term}, leader {leader}")
        if node.shown and node.shown[3] != key[3]:
            self.emit(f"{node_id} switched to {fmt.conf(st.conf)}")
        node.shown = key

    # ------------------------------------------------------------ nodes

    def add_nodes(self, pos: list[str], kw: dict[str, str]) -> None:
        voters = frozenset(_ints(kw.get("voters", "")))
        learners = frozenset(_ints(kw.get("learners", "")))
        index = int(kw.get("index", "0"))
        first = max(self.nodes, default=0) + 1
        for node_id in range(first, first + int(pos[0])):
            cfg = Config(
                node_id=node_id,
                cluster_id=int(kw.get("cluster-id", str(fmt.DEFAULT_CLUSTER_ID))),
                election_tick=int(kw.get("election", "10")),
                heartbeat_tick=int(kw.get("heartbeat", "1")),
                max_inflight=int(kw.get("max-inflight", "256")),
                max_msg_entries=int(kw.get("max-msg-entries", "1024")),
                max_uncommitted_bytes=int(kw.get("max-uncommitted-bytes", str(64 << 20))),
                pre_vote=_bool(kw.get("pre-vote", "true")),
                check_quorum=_bool(kw.get("check-quorum", "true")),
                applied=index if voters else 0,
            )
            self.nodes[node_id] = Node.boot(cfg, ConfState(voters, learners), index)
            self.note(node_id)
            st = self.live(node_id).status()
            self.emit(
                f"{node_id}: {fmt.role(st.role)} term={st.term} commit={st.commit}"
                f" applied={st.applied} {fmt.conf(st.conf)}"
            )

    def tick(self, pos: list[str], kw: dict[str, str]) -> None:
        count = int(pos[1]) if len(pos) > 1 else 1
        for _ in range(count):
            self.call(pos[:1], lambda n: n.tick())

    def tick_n(self, node_id: int, kind: str) -> None:
        cfg = self.nodes[node_id].config
        raw = self.live(node_id)
        if kind == "heartbeat":
            for _ in range(cfg.heartbeat_tick):
                raw.tick()
        else:
            start = raw.status()
            for _ in range(2 * cfg.election_tick - 1):
                raw.tick()
                now = raw.status()
                if (now.role, now.term) != (start.role, start.term):
                    break
        self.note(node_id)

    def propose(self, pos: list[str], kw: dict[str, str]) -> None:
        datas = [p.encode() for p in pos[1:]]
        if len(datas) == 1:
            self.call(pos, lambda n: n.propose(datas[0]))
        else:
            self.call(pos, lambda n: n.propose_many(datas))

    def propose_conf_change(self, pos: list[str], kw: dict[str, str]) -> None:
        kinds = {
            "add": ConfChangeType.ADD_NODE,
            "learner": ConfChangeType.ADD_LEARNER,
            "remove": ConfChangeType.REMOVE_NODE,
        }
        ((key, value),) = kw.items()
        cc = ConfChange(kinds[key], int(value))
        self.call(pos, lambda n: n.propose_conf_change(cc))

    def crash(self, node_id: int) -> None:
        self.nodes[node_id].raw = None
        lost = [m for m in self.wire if m.to == node_id]
        self.wire = [m for m in self.wire if m.to != node_id]
        self.emit(f"{node_id} crashed; {len(lost)} message(s) to it lost")

    def restart(self, pos: list[str], kw: dict[str, str]) -> None:
        node_id = self._id(pos)
        raw = self.nodes[node_id].restart(int(kw["applied"]) if "applied" in kw else None)
        self.note(node_id)
        st = raw.status()
        self.emit(
            f"{node_id} restarted: {fmt.role(st.role)} term={st.term} vote={st.vote}"
            f" commit={st.commit} applied={st.applied} {fmt.conf(st.conf)}"
        )

    def compact(self, pos: list[str], kw: dict[str, str]) -> None:
        node_id, index = self._id(pos), int(pos[1])
        self.nodes[node_id].compact(index)
        self.raft_log(node_id)

    # ------------------------------------------------------------ ready / messages

    def process_ready(self, node_id: int) -> None:
        raw = self.live(node_id)
        if not raw.has_ready():
            self.emit("no Ready")
            return
        rd = self.nodes[node_id].handle_ready(raw)
        for line in fmt.ready(rd):
            self.emit(line)
        self.wire.extend(rd.messages)
        self.note(node_id)

    def take(self, kw: dict[str, str], to: set[int] | None = None) -> Iterator[Message]:
        """Remove and yield the queued messages matching the filters, in wire order."""
        taken = [m for m in self.wire if _matches(m, kw, to)]
        self.wire = [m for m in self.wire if not _matches(m, kw, to)]
        return iter(taken)

    def deliver(self, msg: Message) -> bool:
        line = fmt.message(msg)
        node = self.nodes.get(msg.to)
        if node is None or node.raw is None:
            self.emit(f"{line} DROPPED ({msg.to} is down)")
            return False
        if (msg.frm in self.cut) != (msg.to in self.cut):
            self.emit(f"{line} DROPPED (partition)")
            return False
        self.emit(line)
        with self.indented():
            try:
                node.raw.step(msg)
            except RaftError as exc:
                self.emit(f"error: {type(exc).__name__}: {exc}", always=True)
            self.note(msg.to)
        return True

    def deliver_msgs(self, pos: list[str], kw: dict[str, str]) -> None:
        targets = [int(p) for p in pos]
        for t in targets:
            msgs = list(self.take(kw, {t}))
            if kw.get("order") == "reversed":
                msgs.reverse()
            if "limit" in kw:  # the rest stay queued, ahead of newer messages
                self.wire[:0] = msgs[int(kw["limit"]) :]
                msgs = msgs[: int(kw["limit"])]
            if len(targets) > 1 and msgs:
                self.emit(f"> {t} receiving messages")
            with self.indented(len(targets) > 1):
                for m in msgs:
                    self.deliver(m)

    def drop_msgs(self, pos: list[str], kw: dict[str, str]) -> None:
        for m in self.take(kw):
            self.emit(f"dropped: {fmt.message(m)}")

    def dup_msgs(self, pos: list[str], kw: dict[str, str]) -> None:
        """Queue a second copy of each matching message behind everything on the wire."""
        copies = [m for m in self.wire if _matches(m, kw, None)]
        self.wire.extend(copies)
        for m in copies:
            self.emit(f"duplicated: {fmt.message(m)}")

    def stabilize(self, only: list[int]) -> None:
        for _ in range(MAX_STABILIZE_ROUNDS):
            chosen = only or sorted(self.nodes)
            progressed = False
            for node_id in chosen:
                raw = self.nodes[node_id].raw
                if raw is not None and raw.has_ready():
                    self.emit(f"> {node_id} handling Ready")
                    with self.indented():
                        self.process_ready(node_id)
                    progressed = True
            targets = sorted({m.to for m in self.wire if not only or m.to in only})
            for t in targets:
                msgs = list(self.take({}, {t}))
                self.emit(f"> {t} receiving messages")
                with self.indented():
                    for m in msgs:
                        progressed = self.deliver(m) or progressed
            if not progressed:
                return
        raise CommandError(f"stabilize did not settle in {MAX_STABILIZE_ROUNDS} rounds")

    # ------------------------------------------------------------ inspection

    def status(self, node_id: int) -> None:
        for line in fmt.status(self.live(node_id).status()):
            self.emit(line)

    def raft_log(self, node_id: int) -> None:
        for line in fmt.raft_log(self.nodes[node_id].storage):
            self.emit(line)

    def raft_state(self) -> None:
        for node_id, node in sorted(self.nodes.items()):
            st = None if node.raw is None else node.raw.status()
            self.emit(fmt.raft_state(node_id, st))

    def show_applied(self, node_id: int) -> None:
        node = self.nodes[node_id]
        self.emit(f"applied data: [{', '.join(fmt.data(d) for _, d in node.applied)}]")

    def log_level(self, pos: list[str], kw: dict[str, str]) -> None:
        if pos[0] not in ("none", "all"):
            raise CommandError("log-level is none or all")
        self.quiet = pos[0] == "none"
