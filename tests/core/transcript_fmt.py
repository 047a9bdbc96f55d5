"""One-line text renderings of the core's values, for the interaction transcripts.

Notation (used by every golden file under ``testdata/``):

* ``T/I`` is a log position: term ``T``, index ``I`` (etcd's order). An entry prints as
  ``T/I "data"`` (``""`` is the leader's no-op) or ``T/I conf(add 4)``.
* A message prints as ``FROM->TO Kind term=N ...`` with the fields that matter for its
  kind; ``[cluster=N]`` is added when it carries a cluster id other than the
  harness default (1).
* A ``Ready`` prints one labelled line per non-empty field, entries and messages
  indented below their label.

The renderings are deliberately stable and value-based: they depend only on the data
types of ``pgraft.core.types`` and the ``Status`` attributes documented in
``docs/contracts.md``, never on log wording inside the core.
"""

from __future__ import annotations

from collections.abc import Iterable

from pgraft.core import MemoryStorage, ProgressStatus, Status
from pgraft.core.types import (
    AppendEntries,
    AppendResponse,
    CommitNotice,
    ConfChange,
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
    Ready,
    Role,
    Snapshot,
    TimeoutNow,
    TransferLeader,
    VoteRequest,
    VoteResponse,
)

DEFAULT_CLUSTER_ID = 1


def role(r: Role) -> str:
    return r.name.lower().replace("_", "-")


def ids(values: Iterable[int]) -> str:
    return "(" + ",".join(str(v) for v in sorted(values)) + ")"


def conf(cs: ConfState) -> str:
    text = f"voters={ids(cs.voters)}"
    if cs.learners:
        text += f" learners={ids(cs.learners)}"
    return text


def data(raw: bytes) -> str:
    """Quote bytes: printable ASCII as is, anything else as \\xNN."""
    text = "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\x{b:02x}" for b in raw)
    return f'"{text}"'


def conf_change(raw: bytes) -> str:
    try:
        cc = ConfChange.decode(raw)
    except ValueError:
        return f"conf(malformed {raw!r})"
    kind = {0: "add", 1: "learner", 2: "remove"}[int(cc.type)]
    return f"conf({kind} {cc.node_id})"


def entry(e: Entry) -> str:
    body = conf_change(e.data) if e.type == EntryType.CONF_CHANGE else data(e.data)
    return f"{e.term}/{e.index} {body}"


def proposed(e: Entry) -> str:
    """A forwarded proposal's entry: term and index are not assigned yet."""
    return conf_change(e.data) if e.type == EntryType.CONF_CHANGE else data(e.data)


def snapshot(s: Snapshot) -> str:
    m = s.meta
    return f"{m.term}/{m.index} {conf(m.conf_state)} data={data(s.data)}"


def message(m: Message) -> str:
    head = f"{m.frm}->{m.to}"
    if m.cluster_id != DEFAULT_CLUSTER_ID:
        head += f" [cluster={m.cluster_id}]"
    return f"{head} {_message_body(m)}"


def kind(m: Message) -> str:
    """The message's kind as printed (``App``, ``PreVote``, ...)."""
    return _message_body(m).split(" ", 1)[0]


def _message_body(m: Message) -> str:
    match m:
        case VoteRequest():
            kind = "PreVote" if m.pre_vote else "Vote"
            extra = " transfer" if m.transfer else ""
            return f"{kind} term={m.term} last={m.last_log_term}/{m.last_log_index}{extra}"
        case VoteResponse():
            kind = "PreVoteResp" if m.pre_vote else "VoteResp"
            return f"{kind} term={m.term} {'rejected' if m.reject else 'granted'}"
        case AppendEntries():
            text = f"App term={m.term} prev={m.prev_term}/{m.prev_index} commit={m.commit}"
            if m.entries:
                text += " entries=[" + ", ".join(entry(e) for e in m.entries) + "]"
            return text
        case AppendResponse():
            if m.reject:
                return (
                    f"AppResp term={m.term} rejected index={m.index}"
                    f" hint={m.hint_term}/{m.hint_index}"
                )
            return f"AppResp term={m.term} index={m.index}"
        case Heartbeat():
            return f"Heartbeat term={m.term} commit={m.commit}{_ctx(m.context)}"
        case HeartbeatResponse():
            return f"HeartbeatResp term={m.term}{_ctx(m.context)}"
        case CommitNotice():
            return f"Commit term={m.term} commit={m.commit}"
        case InstallSnapshot():
            return f"Snapshot term={m.term} snap={snapshot(m.snapshot)}"
        case TimeoutNow():
            return f"TimeoutNow term={m.term}"
        case Propose():
            return f"Propose term={m.term} entries=[{', '.join(proposed(e) for e in m.entries)}]"
        case ReadIndexRequest():
            return f"ReadIndex term={m.term}{_ctx(m.context)}"
        case ReadIndexResponse():
            return f"ReadIndexResp term={m.term}{_ctx(m.context)} index={m.index}"
        case TransferLeader():
            return f"TransferLeader term={m.term} target={m.target}"
    raise AssertionError(f"unknown message {m!r}")


def _ctx(context: bytes) -> str:
    return f" ctx={data(context)}" if context else ""


def ready(rd: Ready) -> list[str]:
    lines = [f"Ready must-sync={str(rd.must_sync).lower()}:"]
    if rd.soft_state is not None:
        ss = rd.soft_state
        lines.append(f"soft: role={role(ss.role)} leader={ss.leader}")
    if rd.hard_state is not None:
        hs = rd.hard_state
        lines.append(f"hard: term={hs.term} vote={hs.vote} commit={hs.commit}")
    if rd.snapshot is not None:
        lines.append(f"snapshot: {snapshot(rd.snapshot)}")
    for label, items in (
        ("entries", [entry(e) for e in rd.entries]),
        ("committed", [entry(e) for e in rd.committed_entries]),
        ("messages", [message(m) for m in rd.messages]),
        ("read-states", [f"index={r.index} ctx={data(r.context)}" for r in rd.read_states]),
    ):
        if items:
            lines.append(f"{label}:")
            lines.extend("  " + item for item in items)
    return lines


def progress(peer: int, pr: ProgressStatus) -> str:
    """One row of the leader's view of a member's log."""
    text = f"{peer}: match={pr.match} next={pr.next} state={pr.state.name.lower()}"
    if pr.inflight:
        text += f" inflight={pr.inflight}"
    if pr.is_learner:
        text += " learner"
    return text + (" active" if pr.recent_active else "")


def status(st: Status) -> list[str]:
    lines = [
        f"id={st.id} role={role(st.role)} term={st.term} vote={st.vote}"
        f" leader={st.leader} commit={st.commit} applied={st.applied}",
        conf(st.conf),
    ]
    if st.dropped_cluster_mismatch:
        lines.append(f"dropped (cluster id mismatch): {st.dropped_cluster_mismatch}")
    lines.extend(progress(peer, pr) for peer, pr in sorted(st.progress.items()))
    return lines


def raft_log(s: MemoryStorage) -> list[str]:
    """The persisted log: the snapshot it starts after (if any), then its entries."""
    meta = s.snapshot().meta
    first, last = s.first_index(), s.last_index()
    lines = [f"snapshot {meta.term}/{meta.index} {conf(meta.conf_state)}"] if meta.index else []
    entries = s.entries(first, last + 1) if last >= first else []
    if not entries:
        lines.append(f"log is empty: first index={first}, last index={last}")
    return lines + [entry(e) for e in entries]


def raft_state(node_id: int, st: Status | None) -> str:
    if st is None:
        return f"{node_id}: crashed"
    if node_id in st.conf.voters:
        member = "voter"
    elif node_id in st.conf.learners:
        member = "learner"
    else:
        member = "non-member"
    return (
        f"{node_id}: {role(st.role)} ({member}) term={st.term}"
        f" leader={st.leader} commit={st.commit} applied={st.applied}"
    )
