"""Child process of the storage crash test (run as a script, killed with SIGKILL).

Usage: crash_child.py DATA_DIR SEED [--ack-early]

Waits for a line on stdin (so the parent can start it ahead of time), opens the
storage, prints ``R`` and then, for a bounded number of rounds, persists one Ready per
round (appending entries or replacing an uncommitted suffix, bumping the term now and
then, advancing the commit index, applying committed entries in the same transaction,
compacting now and then). Around each ``save_ready`` it prints:

    W first last term vote commit     before writing (the write in flight)
    A first last term vote commit     after save_ready returned: acknowledged

With ``--ack-early`` it prints the ``A`` line *before* writing, which is the bug the
parent's checker must catch.
"""

from __future__ import annotations

import random
import struct
import sys
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


def main() -> None:
    data_dir, seed = sys.argv[1], int(sys.argv[2])
    ack_early = "--ack-early" in sys.argv[3:]
    sys.stdin.readline()
    st = DurableStorage.open(data_dir, node_id=1, cluster_name="crash")
    sm = StateMachine(st)
    rng = random.Random(seed)
    hs = st.hard_state
    last = st.last_index()
    term = max(hs.term, st.term(last))
    vote, commit = hs.vote, hs.commit
    print("R", flush=True)
    for n in range(ROUNDS):
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
        commit = rng.randint(commit, min(last, commit + 6))
        old = st.entries(st.applied + 1, min(first, commit + 1)) if st.applied < commit else []
        batch = sm.batch([*old, *(e for e in entries if e.index <= commit)])
        line = f"{first} {last} {term} {vote} {commit}"
        if ack_early:
            print("A", line, flush=True)
            time.sleep(0.002)
        else:
            print("W", line, flush=True)
        st.save_ready(entries, HardState(term, vote, commit), None, applied_updates=batch)
        if not ack_early:
            print("A", line, flush=True)
        if n % 20 == 19:
            st.maybe_compact(40, 10)


if __name__ == "__main__":
    main()
