"""The simulated world: nodes, network, faults and clients, driven one step at a time.

Theory of operation
-------------------
Everything random in a run comes from one ``random.Random(seed)``, from which the
network, every node incarnation and every decision draw their own generators, so a
seed replays exactly. A step is one decision (see ``mixes``): a fault, a client
request, the delivery of one due message, or a clock tick (every live node ticks).
After a call into a node its Readies are handled at once (``SimNode.process``) or,
with probability ``Mix.defer_ready``, in a later step (and at the latest before the
next tick), so several inputs can reach the core between two Readies, as in a
runtime that drains its inbox first. The checker verifies every act as it happens,
so a violation is reported at the step that caused it.

The run is divided into epochs; at the end of each, ``liveness.check_liveness`` heals
every fault and demands progress.
"""

from __future__ import annotations

import random

from pgraft.core.storage import MemoryStorage
from pgraft.core.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    ProposalDropped,
    Role,
)

from .checker import Checker
from .liveness import check_liveness
from .mixes import Mix
from .network import LinkFaults, Network
from .node import SimNode
from .trace import Trace

TICK_SKIP = 0.05  # chance that one node misses a clock tick (clock skew) while faulty


class World:
    def __init__(self, seed: int, mix: Mix, trace_len: int = 300) -> None:
        self.rng = random.Random(seed)
        self.mix = mix
        self.trace = Trace(trace_len)
        self.net = Network(random.Random(self.rng.getrandbits(64)), self.trace)
        self.check = Checker()
        self.nodes: dict[int, SimNode] = {}
        self.clock = 0
        self.counter = 0
        self.crashes = 0
        self.conf_changes = 0
        self.dropped_proposals = 0
        self.liveness_ticks: list[int] = []
        self.pending: set[int] = set()  # nodes whose Readies wait for a later step
        self.faulty = True  # False while liveness is checked
        self.baseline = LinkFaults(mix.drop, mix.duplicate, mix.delay, mix.max_delay, mix.reorder)
        self.net.faults = LinkFaults(**vars(self.baseline))
        self._faults = list(mix.faults)
        self._fault_w = list(mix.faults.values())
        self._clients = list(mix.clients)
        self._client_w = list(mix.clients.values())
        n = self.rng.randint(mix.min_voters, mix.max_voters)
        conf = ConfState(voters=frozenset(range(1, n + 1)))
        for node_id in range(1, n + 1):
            self._create(node_id, MemoryStorage.bootstrap(conf))

    def _create(self, node_id: int, storage: MemoryStorage) -> SimNode:
        services = (self.net, self.check, self.trace)
        node = SimNode(
            node_id, storage, self.mix, random.Random(self.rng.getrandbits(64)), services
        )
        self.nodes[node_id] = node
        node.start()
        return node

    # ------------------------------------------------------------ driving

    def run(self, steps: int) -> None:
        epoch = self.mix.epoch_steps or steps
        for step in range(steps):
            self.trace.step = step
            self.step()
            if (step + 1) % epoch == 0 or step + 1 == steps:
                check_liveness(self)

    def step(self) -> None:
        m, rng = self.mix, self.rng
        if self.pending and rng.random() < 0.5:
            node_id = rng.choice(sorted(self.pending))
            self.pending.discard(node_id)
            self.after_input(self.nodes[node_id], defer=False)
        r = rng.random()
        if r < m.fault_rate and self._faults:
            action = rng.choices(self._faults, self._fault_w)[0]
            getattr(self, "fault_" + action)()
        elif r < m.fault_rate + m.client_rate and self._clients:
            action = rng.choices(self._clients, self._client_w)[0]
            getattr(self, "client_" + action)()
        elif self.net.has_due() and rng.random() >= m.early_tick:
            self.deliver()
        else:
            self.tick(TICK_SKIP)

    def after_input(self, node: SimNode, defer: bool = True) -> None:
        """Handle the node's Readies now, or (while faulty, sometimes) in a later step,
        so that several inputs reach the core before its next Ready."""
        if node.raw is None:
            self.pending.discard(node.id)
        elif defer and self.faulty and self.rng.random() < self._defer_chance(node.id):
            self.pending.add(node.id)
        else:
            node.process()
            if node.busy and self.faulty:
                self.pending.add(node.id)
            elif node.busy:
                node.process()

    def _defer_chance(self, node_id: int) -> float:
        """A node already holding back input keeps batching more often (a runtime that
        drains a long inbox before its next Ready)."""
        m = self.mix
        return max(m.defer_ready, m.batch_more) if node_id in self.pending else m.defer_ready

    def flush(self) -> None:
        """Handle every postponed Ready (before a tick, and before liveness is checked)."""
        pending, self.pending = sorted(self.pending), set()
        for node_id in pending:
            node = self.nodes[node_id]
            node.process()
            if node.busy:
                node.process()

    def tick(self, skip: float) -> None:
        self.flush()
        self.clock += 1
        self.net.advance(self.clock)
        self.trace.add(0, "tick", self.clock)
        rng = self.rng
        for node in list(self.nodes.values()):
            raw = node.raw
            if raw is None or (skip and rng.random() < skip):
                continue
            raw.tick()
            self.after_input(node)

    def deliver(self) -> None:
        msg = self.net.pop_due()
        if msg is None:
            return
        node = self.nodes.get(msg.to)
        if node is None or node.raw is None:
            self.trace.add(msg.to, "lost", msg)
            return
        self.trace.add(msg.to, "deliver", msg)
        node.raw.step(msg)
        self.after_input(node)

    # ------------------------------------------------------------ helpers

    def up(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.raw is not None]

    def leader(self) -> SimNode | None:
        leaders = [n for n in self.nodes.values() if n.raw is not None and n.role == Role.LEADER]
        return max(leaders, key=lambda n: n.hs.term) if leaders else None

    def pick_up(self, members_only: bool = False) -> SimNode | None:
        nodes = [n for n in self.up() if n.is_member() or not members_only]
        return self.rng.choice(nodes) if nodes else None

    def new_data(self, prefix: bytes) -> bytes:
        self.counter += 1
        return b"%s%d" % (prefix, self.counter)

    # ------------------------------------------------------------ faults

    def _crash(self, node: SimNode) -> None:
        self.crashes += 1
        if self.rng.random() < self.mix.mid_ready_crash:
            node.crash_at = self.rng.choice(self.mix.crash_stages)
            self.trace.add(node.id, "arm-crash", f"at stage {node.crash_at} of the next Ready")
        else:
            node.crash("crash")

    def fault_crash(self) -> None:
        node = self.pick_up()
        if node is not None:
            self._crash(node)

    def fault_crash_leader(self) -> None:
        node = self.leader()
        if node is not None:
            self._crash(node)

    def fault_restart(self) -> None:
        down = [n for n in self.nodes.values() if n.raw is None and not n.retired]
        if down:
            node = self.rng.choice(down)
            node.start()
            self.after_input(node)

    def fault_partition(self) -> None:
        ids = list(self.nodes)
        self.rng.shuffle(ids)
        k = self.rng.randint(1, max(1, len(ids) // 2))
        group, rest = set(ids[:k]), set(ids[k:])
        self.trace.add(0, "partition", f"{sorted(group)} | {sorted(rest)}")
        self.net.partition(group, rest, both_ways=True)

    def fault_partition_oneway(self) -> None:
        ids = list(self.nodes)
        for _ in range(self.rng.randint(1, 3)):
            a, b = self.rng.sample(ids, 2)
            self.trace.add(0, "cut-oneway", f"{a} -> {b}")
            self.net.partition({a}, {b}, both_ways=False)

    def fault_isolate_leader(self) -> None:
        node = self.leader()
        if node is not None:
            self.trace.add(node.id, "isolate", "leader partitioned away")
            self.net.partition({node.id}, set(self.nodes) - {node.id}, both_ways=True)

    def fault_heal(self) -> None:
        self.trace.add(0, "heal-net", "partitions healed")
        self.net.heal()

    def fault_storm(self) -> None:
        self.trace.add(0, "storm", f"drop {self.mix.storm_drop}")
        self.net.faults.drop = self.mix.storm_drop

    def fault_calm(self) -> None:
        self.trace.add(0, "calm", "baseline network")
        self.net.faults = LinkFaults(**vars(self.baseline))

    def fault_compact(self) -> None:
        node = self.pick_up()
        if node is not None:
            node.compact()

    def fault_campaign(self) -> None:
        node = self.pick_up(members_only=True)
        if node is not None and node.raw is not None:
            self.trace.add(node.id, "campaign")
            node.raw.campaign()
            self.after_input(node)

    def fault_transfer(self) -> None:
        leader = self.leader()
        via = leader if leader is not None and self.rng.random() < 0.8 else self.pick_up()
        if via is None or via.raw is None or not via.conf.voters:
            return
        target = self.rng.choice(sorted(via.conf.voters))
        self.trace.add(via.id, "transfer", f"to {target}")
        try:
            via.raw.transfer_leadership(target)
        except ProposalDropped as exc:
            self.trace.add(via.id, "transfer-drop", str(exc))
        self.after_input(via)

    def fault_conf_change(self) -> None:
        leader = self.leader()
        via = leader if leader is not None and self.rng.random() < 0.85 else self.pick_up()
        if via is None or via.raw is None or not via.conf.voters:
            return
        cc = self._choose_conf_change(via.conf)
        if cc is None:
            return
        self.conf_changes += 1
        self.trace.add(via.id, "conf-change", cc)
        try:
            via.raw.propose_conf_change(cc)
        except ProposalDropped as exc:
            self.trace.add(via.id, "cc-dropped", str(exc))
        self.after_input(via)

    def _choose_conf_change(self, conf: ConfState) -> ConfChange | None:
        m, rng = self.mix, self.rng
        options: list[ConfChange] = []
        members = conf.voters | conf.learners
        idle = [
            n.id
            for n in self.nodes.values()
            if not n.retired and not n.was_member and n.id not in members
        ]
        live = sum(1 for n in self.nodes.values() if not n.retired)
        if not idle and live < m.max_members and max(self.nodes) < m.max_node_id:
            idle = [max(self.nodes) + 1]
        if idle and len(members) < m.max_members:
            new = rng.choice(idle)
            options.append(ConfChange(ConfChangeType.ADD_LEARNER, new))
            if len(conf.voters) < m.max_members:
                options.append(ConfChange(ConfChangeType.ADD_NODE, new))
        for learner in sorted(conf.learners):
            options.append(ConfChange(ConfChangeType.ADD_NODE, learner))
            options.append(ConfChange(ConfChangeType.REMOVE_NODE, learner))
        if len(conf.voters) > m.min_voters:
            options.extend(ConfChange(ConfChangeType.REMOVE_NODE, v) for v in sorted(conf.voters))
        retired = {n.id for n in self.nodes.values() if n.retired}
        options = [cc for cc in options if cc.node_id not in retired]  # a stale view
        if not options:
            return None
        cc = rng.choice(options)
        if cc.node_id not in self.nodes:
            self._create(cc.node_id, MemoryStorage())
        return cc

    # ------------------------------------------------------------ clients

    def client_propose(self) -> None:
        self._propose([self.new_data(b"v")])

    def client_propose_many(self) -> None:
        self._propose([self.new_data(b"m") for _ in range(self.rng.randint(2, 8))])

    def _propose(self, datas: list[bytes]) -> None:
        node = self.pick_up()
        if node is None or node.raw is None:
            return
        self.trace.add(node.id, "propose", datas[0] if len(datas) == 1 else f"{len(datas)} entries")
        try:
            if len(datas) == 1:
                node.raw.propose(datas[0])
            else:
                node.raw.propose_many(datas)
        except ProposalDropped:
            self.dropped_proposals += 1
        self.after_input(node)

    def client_read(self) -> None:
        node = self.pick_up()
        if node is None or node.raw is None:
            return
        ctx = self.new_data(b"r")
        self.check.begin_read(ctx)
        self.trace.add(node.id, "read-index", ctx)
        try:
            node.raw.read_index(ctx)
        except ProposalDropped:
            return
        self.after_input(node)
