"""Real network partitions: one private network namespace, blackhole routing rules.

Theory of operation
-------------------
All nodes of a run live in one network namespace of their own (``ip netns``), so
nothing done here touches the host's network. Inside it, every node listens on, and
sends from, its own loopback address (``127.0.0.<10+id>``; all of 127/8 is local to
``lo``). A directed link ``a -> b`` is cut with a policy-routing rule
``from <a> to <b> blackhole``: the kernel refuses to route packets from a to b, so new
connections cannot complete and established ones stall (TCP retransmits) until the
rule is removed, when queued data flows again. Because a rule matches one direction
only, one-way partitions are real: b's packets still reach a. The namespace's
``lookup local`` rule is moved behind the blackhole rules (it normally has priority 0,
which no rule can precede).

Control sockets are Unix sockets on the file system, which namespaces do not
isolate, so the harness stays in the host namespace and talks to nodes directly.

Everything is done by running ``ip`` (iproute2) with argument lists; it needs root.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable

RULE_PREF = 100
LOCAL_PREF = 1000


class NetworkError(Exception):
    """An ``ip`` command failed."""


def node_address(node_id: int) -> str:
    if not 1 <= node_id <= 200:
        raise ValueError(f"node id {node_id} out of range for a loopback address")
    return f"127.0.0.{10 + node_id}"


def _ip(*args: str, netns: str | None = None) -> None:
    argv = ["ip", *(("netns", "exec", netns, "ip") if netns else ()), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    if done.returncode != 0:
        raise NetworkError(f"{' '.join(argv)}: {done.stderr.strip()}")


def available() -> bool:
    """Can this process create network namespaces (root, iproute2)?"""
    probe = f"pgraft-probe-{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except (NetworkError, OSError, subprocess.TimeoutExpired):
        return False
    try:
        _ip("netns", "del", probe)
    except NetworkError:
        return False
    return True


class Network:
    """A private namespace with cuttable directed links between node addresses."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"pgraft-chaos-{os.getpid()}"
        self._cut: set[tuple[int, int]] = set()
        self._created = False

    def create(self) -> None:
        _ip("netns", "add", self.name)
        self._created = True
        _ip("link", "set", "lo", "up", netns=self.name)
        _ip("rule", "add", "pref", str(LOCAL_PREF), "lookup", "local", netns=self.name)
        _ip("rule", "del", "pref", "0", netns=self.name)

    def destroy(self) -> None:
        if self._created:
            self._created = False
            self._cut.clear()
            _ip("netns", "del", self.name)

    def exec_prefix(self) -> list[str]:
        """Prefix an argv with this to run it inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    @property
    def cut_links(self) -> frozenset[tuple[int, int]]:
        return frozenset(self._cut)

    def cut(self, links: Iterable[tuple[int, int]]) -> None:
        """Drop every packet from ``a`` to ``b`` for each directed link ``(a, b)``."""
        for a, b in links:
            if (a, b) in self._cut or a == b:
                continue
            _ip(*self._rule(a, b, "add"), netns=self.name)
            self._cut.add((a, b))

    def heal(self) -> None:
        """Remove every cut."""
        for a, b in sorted(self._cut):
            _ip(*self._rule(a, b, "del"), netns=self.name)
        self._cut.clear()

    @staticmethod
    def _rule(a: int, b: int, verb: str) -> list[str]:
        src, dst = node_address(a), node_address(b)
        return ["rule", verb, "pref", str(RULE_PREF), "from", src, "to", dst, "blackhole"]


def partition_links(groups: Iterable[Iterable[int]]) -> set[tuple[int, int]]:
    """Both directions of every link between different groups."""
    sides = [set(g) for g in groups]
    return {
        (a, b)
        for i, left in enumerate(sides)
        for j, right in enumerate(sides)
        if i != j
        for a in left
        for b in right
    }
