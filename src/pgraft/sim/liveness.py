"""Liveness: once every fault heals, the cluster must make progress within a bound.

Theory of operation
-------------------
At the end of each epoch the world is made healthy: partitions removed, the network
clean (no loss, duplication, delay or reordering), every crashed node that was not
removed restarted, no Ready held back. Then time runs (all due messages delivered,
then one tick) and every ``election_tick`` ticks a fresh probe entry is proposed
through the leader (or any member when none is known). The check passes once some
probe has been applied and every live member of the leader's configuration has
applied it. It fails after ``LIVENESS_BASE_TIMEOUTS`` election timeouts plus time
proportional to the uncommitted backlog (catching up takes longer when there is
more to send).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pgraft.core.types import ProposalDropped

from .checker import Violation
from .network import LinkFaults

if TYPE_CHECKING:
    from .world import World

LIVENESS_BASE_TIMEOUTS = 30
MAX_DELIVERIES_PER_TICK = 20_000


def check_liveness(world: World) -> None:
    """Heal every fault, then require a leader, a committed probe and every live member
    caught up, within the bound. Raises ``Violation("liveness")``."""
    world.trace.add(0, "heal-all", "every fault healed; checking liveness")
    world.net.heal()
    world.net.faults = LinkFaults()
    world.faulty = False
    world.flush()
    for node in world.nodes.values():
        node.crash_at = None
        if node.raw is None and not node.retired:
            node.start()
            world.after_input(node)
    backlog = max(n.storage.last_index() for n in world.nodes.values()) - world.check.max_commit
    m = world.mix
    bound = LIVENESS_BASE_TIMEOUTS * m.election_tick + 4 * backlog // m.max_msg_entries
    probes: dict[bytes, int] = {}  # probe data -> index where it was applied (0: not yet)
    world.check.watch = probes
    for ticks in range(bound + 1):
        for _ in range(MAX_DELIVERIES_PER_TICK):
            if not world.net.has_due():
                break
            world.deliver()
        if _caught_up(world, probes):
            world.liveness_ticks.append(ticks)
            world.check.watch = {}
            world.faulty = True
            world.net.faults = LinkFaults(**vars(world.baseline))
            return
        if ticks % m.election_tick == 0:
            _probe(world, probes)
        world.tick(0.0)
    leader = world.leader()
    raise Violation(
        "liveness",
        f"after healing, {bound} ticks passed without a leader committing a fresh proposal "
        f"and every live member applying it (leader {leader.id if leader else None}, "
        f"probes applied at {sorted(probes.values())}, "
        f"applied {[(n.id, n.applied) for n in world.nodes.values()]})",
    )


def _probe(world: World, probes: dict[bytes, int]) -> None:
    node = world.leader() or world.pick_up(members_only=True)
    if node is None or node.raw is None:
        return
    data = world.new_data(b"probe")
    probes[data] = 0
    world.trace.add(node.id, "probe", data)
    try:
        node.raw.propose(data)
    except ProposalDropped:
        return
    world.after_input(node)


def _caught_up(world: World, probes: dict[bytes, int]) -> bool:
    index = max(probes.values(), default=0)
    leader = world.leader()
    if not index or leader is None:
        return False
    members = leader.conf.voters | leader.conf.learners
    return all(
        n.applied >= index
        for n in world.nodes.values()
        if n.id in members and not n.retired and n.raw is not None
    )
