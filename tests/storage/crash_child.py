"""The child process of the storage crash test, which kills it with SIGKILL.

``run`` is entered in a freshly forked process (``os.fork`` from the test, whose
interpreter has already imported everything, so a child costs a fork rather than an
interpreter start) and never returns: it opens the storage, writes ``R`` to
``out_fd`` and then, for a bounded number of rounds, persists one Ready per
round (appending entries or replacing an uncommitted suffix, bumping the term now and
then, advancing the commit index, applying committed entries in the same transaction,
compacting now and then; some Readies only advance the commit index, with
``sync=False``). Around each ``save_ready`` it prints:

    W first last term vote commit     before writing (the write in flight)
    A first last term vote commit     after save_ready returned: acknowledged

With ``ack_early`` it writes the ``A`` line *before* writing, which is the bug the
parent's checker must catch. Lines go out with one ``os.write`` each (no buffering).
"""

from __future__ import annotations

import os
import random
import struct
import time

from pgraft.core.types import Entry, HardState
from pgraft.statemachine import StateMachine, commands
from pgraft.storage import DurableStorage

ROUNDS = 100_000


def body(index: int, term: int) -> bytes:
    return f"{index}/{term};".encode() * (1 + index % 7)


def payload(index: int, term: int) -> bytes:
    rid = struct.pack(">QQ", index, term)
    return commands.encode(commands.LogAppend(rid, body(index, term)))


def run(data_dir: str, seed: int, out_fd: int, ack_early: bool) -> None:
    def say(*words: object) -> None:
        os.write(out_fd, (" ".join(str(w) for w in words) + "\n").encode())

    st = DurableStorage.open(data_dir, node_id=1, cluster_name="crash")
    sm = StateMachine(st)
    rng = random.Random(seed)
    hs = st.hard_state
    last = st.last_index()
    term = max(hs.term, st.term(last))
    vote, commit = hs.vote, hs.commit
    say("R")
    for _ in range(ROUNDS):
        entries: list[Entry] = []
        commit_only = last > commit and rng.random() < 0.15
        if commit_only:  # no fsync asked: SIGKILL cannot lose it (the kernel has it)
            first = last + 1
        else:
            if last > commit and rng.random() < 0.1:
                first = rng.randint(commit + 1, last)
                term += 1
                vote = 0
            else:
                first = last + 1
            if rng.random() < 0.05:
                term += 1
                vote = rng.choice((0, 1))
            count = rng.randint(1, 8)
            entries = [Entry(term, i, data=payload(i, term)) for i in range(first, first + count)]
            last = entries[-1].index
        commit = rng.randint(commit + commit_only, min(last, commit + 6))
        old = st.entries(st.applied + 1, min(first, commit + 1)) if st.applied < commit else []
        batch = sm.batch([*old, *(e for e in entries if e.index <= commit)])
        line = (first, last, term, vote, commit)
        if ack_early:
            say("A", *line)
            time.sleep(0.002)
        else:
            say("W", *line)
        hs = HardState(term, vote, commit)
        st.save_ready(entries, hs, None, applied_updates=batch, sync=not commit_only)
        if not ack_early:
            say("A", *line)
        if rng.random() < 0.05:
            st.maybe_compact(40, 10)
