"""Fault mixes: how often each kind of trouble and client activity happens in a run.

Theory of operation
-------------------
A ``Mix`` is a frozen bundle of probabilities and core settings. Every simulated step
draws one number against the mix: with ``fault_rate`` it performs a fault action
(chosen by weight from ``faults``), with ``client_rate`` a client action (from
``clients``), and otherwise it moves the system forward (delivers a due message, or
advances the clock). The network's baseline misbehaviour (drop, duplicate, delay,
reorder) applies to every message while the run is in its faulty phase; a "storm"
fault raises it for a while and "calm" restores it.

``default`` exercises everything the core claims to handle. The other mixes focus
the search on one scenario and exist mostly for the teeth tests (tests/sim), which
break the core on purpose and need the simulator to find the break quickly:
``figure8`` crashes leaders often, mostly after they persisted new entries but before
they sent them, and replicates one entry per message, so a leader can learn that an
old-term entry reached a majority before its own no-op did (the paper's Figure 8);
``elections`` makes candidates with different logs collide (PreVote off). ``plain``
turns PreVote and CheckQuorum off (removed or partitioned nodes then disrupt
elections) and sends small batches with few in flight.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FAULT_ACTIONS = (
    "crash",
    "crash_leader",
    "restart",
    "partition",
    "partition_oneway",
    "isolate_leader",
    "heal",
    "storm",
    "calm",
    "conf_change",
    "transfer",
    "compact",
    "campaign",
)
CLIENT_ACTIONS = ("propose", "propose_many", "read")


@dataclass(frozen=True)
class Mix:
    name: str
    # cluster shape
    min_voters: int = 3  # initial voters are drawn from [min_voters, max_voters]
    max_voters: int = 7
    max_members: int = 7  # live members (voters + learners) at any time
    max_node_id: int = 10  # ids are never reused, so removals use ids up
    # core settings
    election_tick: int = 10
    heartbeat_tick: int = 1
    max_msg_entries: int = 32
    max_inflight: int = 8
    pre_vote: bool = True
    check_quorum: bool = True
    # network baseline while faulty
    drop: float = 0.02
    duplicate: float = 0.02
    delay: float = 0.1  # probability that a message is delayed by 1..max_delay ticks
    max_delay: int = 3
    reorder: float = 0.3  # probability that delivery picks a random due message
    storm_drop: float = 0.3
    early_tick: float = 0.05  # probability of ticking although messages are due
    # per-step action rates and weights
    fault_rate: float = 0.02
    client_rate: float = 0.08
    mid_ready_crash: float = 0.5  # share of crashes that strike inside a Ready
    crash_stages: tuple[int, ...] = (0, 1, 2, 3)  # where inside a Ready (see node.py)
    defer_ready: float = 0.15  # chance that a node's Readies wait for a later step
    batch_more: float = 0.6  # ... and that a node already waiting takes more input first
    split_ready: float = 0.15  # chance that a Ready's apply/advance wait for later input
    faults: dict[str, float] = field(default_factory=dict)
    clients: dict[str, float] = field(default_factory=dict)
    # liveness: faults heal every ``epoch_steps`` steps (0: once, at the end)
    epoch_steps: int = 1000
    snapshot_keep: int = 4  # entries kept behind a snapshot when compacting

    def __post_init__(self) -> None:
        unknown = (set(self.faults) - set(FAULT_ACTIONS)) | (
            set(self.clients) - set(CLIENT_ACTIONS)
        )
        if unknown:
            raise ValueError(f"mix {self.name}: unknown actions {sorted(unknown)}")


_DEFAULT_FAULTS = {
    "crash": 3.0,
    "crash_leader": 2.0,
    "restart": 6.0,
    "partition": 1.5,
    "partition_oneway": 1.0,
    "isolate_leader": 1.5,
    "heal": 3.0,
    "storm": 0.7,
    "calm": 1.0,
    "conf_change": 2.5,
    "transfer": 1.5,
    "compact": 3.0,
    "campaign": 0.5,
}
_DEFAULT_CLIENTS = {"propose": 6.0, "propose_many": 1.0, "read": 3.0}

DEFAULT = Mix(name="default", faults=_DEFAULT_FAULTS, clients=_DEFAULT_CLIENTS)

FIGURE8 = Mix(
    name="figure8",
    min_voters=3,
    max_voters=5,
    election_tick=5,
    max_msg_entries=1,
    max_inflight=1,
    drop=0.0,
    duplicate=0.0,
    delay=0.05,
    reorder=0.2,
    fault_rate=0.06,
    client_rate=0.2,
    mid_ready_crash=0.9,
    crash_stages=(1, 2),
    faults={
        "crash_leader": 5.0,
        "crash": 1.0,
        "restart": 6.0,
        "isolate_leader": 1.0,
        "heal": 1.0,
    },
    clients={"propose": 1.0},
)

ELECTIONS = Mix(
    name="elections",
    election_tick=4,
    pre_vote=False,
    drop=0.1,
    duplicate=0.05,
    delay=0.3,
    reorder=0.5,
    fault_rate=0.05,
    client_rate=0.08,
    mid_ready_crash=0.5,
    faults={
        "crash": 3.0,
        "crash_leader": 2.0,
        "restart": 6.0,
        "partition": 2.0,
        "partition_oneway": 1.0,
        "isolate_leader": 1.0,
        "heal": 2.0,
        "campaign": 3.0,
        "transfer": 1.0,
    },
    clients={"propose": 1.0},
)

PLAIN = Mix(
    name="plain",
    pre_vote=False,
    check_quorum=False,
    max_msg_entries=4,
    max_inflight=2,
    faults=_DEFAULT_FAULTS,
    clients=_DEFAULT_CLIENTS,
)

MIXES: dict[str, Mix] = {m.name: m for m in (DEFAULT, FIGURE8, ELECTIONS, PLAIN)}
