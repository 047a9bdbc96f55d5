"""A deterministic, seeded simulator that hunts for safety and liveness bugs in the core.

Theory of operation
-------------------
A run builds a small cluster (3 to 7 members) of real ``RawNode`` instances over
``MemoryStorage`` "disks", connected by a simulated network that drops, duplicates,
delays and reorders messages and can be partitioned (``network``). One seeded
random generator drives every decision, so a seed replays exactly. Each step does
one thing: inject a fault (crash, restart, partition, membership change, leadership
transfer, snapshot), act as a client (propose, read), deliver a message or advance
the clock (``world``, ``mixes``). Readies are handled the way a real runtime must
(persist, send, apply, advance), and crashes may strike in the middle (``node``).
Every observable act is checked against Raft's safety properties as it happens
(``checker``); at the end of each epoch all faults heal and liveness is demanded.
A failure reports the seed, the command that replays it and the recent events
(``trace``, ``runner``). Run it as ``python -m pgraft.sim``.
"""

from .checker import Violation
from .mixes import MIXES, Mix
from .runner import SeedResult, replay_command, run_seed, run_seeds

__all__ = ["MIXES", "Mix", "SeedResult", "Violation", "replay_command", "run_seed", "run_seeds"]
