"""A linearizability checker for key-value histories (Wing & Gong, Lowe, porcupine).

Theory of operation
-------------------
A history is linearizable when every operation can be given a single instant between
its invocation and its completion such that, taken in the order of those instants,
the operations are a legal sequential execution of the model and every ``ok``
operation returns what it returned in reality.

*Compositionality.* Linearizability is local (Herlihy & Wing): a history over many
independent objects is linearizable iff each object's sub-history is. A key-value map
whose operations each touch one key is a set of independent registers, so the history
is partitioned by key and each key is checked alone (the "P-compositionality" of
Horn & Kroening). This turns one exponential search into many small ones.

*Search.* For one key, the invocation and completion events are put in time order in a
doubly linked list. A depth-first search (Wing & Gong, with Lowe's memoisation, as in
porcupine) walks the list: at an invocation it tries to linearize that operation now
(the model must accept it from the current state); on success the operation's two
events are unlinked (dancing links) and the walk restarts from the head; when the walk
reaches a completion event, the operation it completes was not linearized before its
deadline, so the search backtracks. A cache of ``(linearized set as a bitmask, model
state)`` pairs already explored prunes revisits: two paths that linearized the same
operations and reached the same state have the same future.

*Indeterminate operations.* An ``info`` operation may have taken effect at any instant
after its invocation, or never. Its completion is placed at infinity; the model
accepts it with any result. "Never" needs no special case: linearizing it after every
other completion is indistinguishable from never, so the search succeeds as soon as
every *definite* operation is linearized. Indeterminate reads change nothing and are
dropped before the search; definitely failed operations never took effect and are
dropped too.

*Ties.* Events with the same timestamp are ordered invocations first, which treats the
operations as concurrent: the checker never reports a violation that rests on clock
resolution.

*Budget.* The search is exponential in the worst case. Each key gets a step budget and
the whole check a wall-clock deadline; a key whose search runs out is reported
``unknown`` (never silently ``ok``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from pgraft.chaos.history import Op, OpKind, Outcome

State = str | None
"""The value of one register; ``None`` means the key is absent."""


class Verdict(StrEnum):
    LINEARIZABLE = "linearizable"
    VIOLATION = "not linearizable"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class KeyResult:
    key: str
    verdict: Verdict
    ops: int  # operations searched (after dropping failed ops and indeterminate reads)
    steps: int
    best_prefix: tuple[int, ...] = ()  # op ids of the longest linearization found
    blocked: int | None = None  # op that could not be linearized after best_prefix


@dataclass(frozen=True, slots=True)
class CheckResult:
    verdict: Verdict
    keys: tuple[KeyResult, ...]

    @property
    def violations(self) -> tuple[KeyResult, ...]:
        return tuple(k for k in self.keys if k.verdict is Verdict.VIOLATION)

    @property
    def unknown(self) -> tuple[KeyResult, ...]:
        return tuple(k for k in self.keys if k.verdict is Verdict.UNKNOWN)


def kv_step(state: State, op: Op) -> tuple[bool, State]:
    """The sequential register: may ``op`` run in ``state``, and what state follows?

    ``info`` operations are accepted with any result; their effect is applied as the
    model dictates."""
    definite = op.outcome is Outcome.OK
    match op.kind:
        case OpKind.GET:
            return (not definite or op.result == state), state
        case OpKind.PUT:
            value = op.args[0]
            return True, value if isinstance(value, str) else None
        case OpKind.DELETE:
            return (not definite or op.result == (state is not None)), None
        case OpKind.CAS:
            expected, value = op.args[0], op.args[1]
            new = value if isinstance(value, str) else None
            matches = state == expected
            if not definite:
                return True, new if matches else state
            if not isinstance(op.result, tuple) or len(op.result) != 2:
                return False, state
            swapped, current = op.result
            if swapped is True:
                return matches, new
            return (not matches and current == state), state
        case OpKind.APPEND:
            raise ValueError(f"op {op.id}: append is not a key-value operation")


def _searchable(op: Op) -> bool:
    if op.outcome is Outcome.FAIL:
        return False
    return not (op.outcome is not Outcome.OK and op.kind is OpKind.GET)


def check_key(key: str, ops: list[Op], max_steps: int, deadline: float) -> KeyResult:
    """Search for a linearization of one key's operations (see the module docstring)."""
    ops = [op for op in ops if _searchable(op)]
    n = len(ops)
    if n == 0:
        return KeyResult(key, Verdict.LINEARIZABLE, 0, 0)
    inf = float("inf")
    # Events: (time, 0=invoke/1=complete, tiebreak, op position).
    events: list[tuple[float, int, int, int]] = []
    for pos, op in enumerate(ops):
        events.append((op.invoke, 0, pos, pos))
        done = op.complete if op.outcome is Outcome.OK and op.complete is not None else inf
        events.append((done, 1, pos, pos))
    events.sort()
    head = 2 * n
    nxt = [-1] * (2 * n + 1)
    prv = [-1] * (2 * n + 1)
    is_call = [False] * (2 * n)
    op_at = [0] * (2 * n)
    match_of = [0] * (2 * n)
    call_pos = [0] * n
    prev = head
    for e, (_, kind, _, pos) in enumerate(events):
        nxt[prev], prv[e] = e, prev
        prev = e
        op_at[e] = pos
        is_call[e] = kind == 0
        if kind == 0:
            call_pos[pos] = e
        else:
            match_of[call_pos[pos]] = e

    def unlink(e: int) -> None:
        p, q = prv[e], nxt[e]
        nxt[p] = q
        if q != -1:
            prv[q] = p

    def relink(e: int) -> None:
        p, q = prv[e], nxt[e]
        nxt[p] = e
        if q != -1:
            prv[q] = e

    definite_left = sum(1 for op in ops if op.outcome is Outcome.OK)
    state: State = None
    linearized = 0
    cache: set[tuple[int, State]] = set()
    stack: list[tuple[int, State]] = []  # (call event, state before it)
    best: tuple[int, ...] = ()
    blocked: int | None = None
    steps = 0
    entry = nxt[head]
    while definite_left > 0:
        steps += 1
        if steps > max_steps or ((steps & 0xFFF) == 0 and time.monotonic() > deadline):
            return KeyResult(key, Verdict.UNKNOWN, n, steps, best, blocked)
        if is_call[entry]:
            op = ops[op_at[entry]]
            ok, new_state = kv_step(state, op)
            if ok:
                bits = linearized | (1 << op_at[entry])
                if (bits, new_state) not in cache:
                    cache.add((bits, new_state))
                    stack.append((entry, state))
                    state, linearized = new_state, bits
                    if op.outcome is Outcome.OK:
                        definite_left -= 1
                    unlink(entry)
                    unlink(match_of[entry])
                    entry = nxt[head]
                    continue
            entry = nxt[entry]
            continue
        if len(stack) >= len(best):
            best = tuple(ops[op_at[c]].id for c, _ in stack)
            blocked = ops[op_at[entry]].id
        if not stack:
            return KeyResult(key, Verdict.VIOLATION, n, steps, best, blocked)
        entry, state = stack.pop()
        linearized &= ~(1 << op_at[entry])
        if ops[op_at[entry]].outcome is Outcome.OK:
            definite_left += 1
        relink(match_of[entry])
        relink(entry)
        entry = nxt[entry]
    return KeyResult(key, Verdict.LINEARIZABLE, n, steps)


def check(
    ops: Iterable[Op], max_steps_per_key: int = 2_000_000, time_budget_s: float = 60.0
) -> CheckResult:
    """Check a key-value history (``append`` operations are ignored here; see
    ``logcheck``). The verdict is a violation if any key has one, else unknown if any
    key ran out of budget, else linearizable."""
    deadline = time.monotonic() + time_budget_s
    by_key: dict[str, list[Op]] = {}
    for op in ops:
        if op.kind is not OpKind.APPEND:
            if op.key is None:
                raise ValueError(f"op {op.id}: a key-value operation needs a key")
            by_key.setdefault(op.key, []).append(op)
    results = tuple(
        check_key(key, key_ops, max_steps_per_key, deadline)
        for key, key_ops in sorted(by_key.items())
    )
    verdicts = {r.verdict for r in results}
    if Verdict.VIOLATION in verdicts:
        verdict = Verdict.VIOLATION
    elif Verdict.UNKNOWN in verdicts:
        verdict = Verdict.UNKNOWN
    else:
        verdict = Verdict.LINEARIZABLE
    return CheckResult(verdict, results)
