"""The node's backend: durable storage, the state machine and the transport, wired.

Theory of operation
-------------------
``Backend`` owns the three I/O-facing pieces and offers the runtime exactly the verbs
of the Raft recipe: ``persist`` (one SQLite transaction holding a Ready's
snapshot, entries, hard state *and* the state machine's effects of its committed
entries; it returns the results of the applied commands keyed by request id),
``send`` (batch per peer, never blocks) and ``sync_peers`` (dial every member at the
address recorded in the log).

It also keeps the rules about a node's identity: ``bootstrap`` writes a one-member
configuration (the new leader then logs an ``ADD_NODE`` of itself whose context carries
its address, so members added later learn where it is), and ``adoptable``/``adopt``
decide and carry out the wipe when another cluster's leader adds a fresh node.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence

import msgpack

from pgraft.core.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    EntryType,
    Message,
    Ready,
)
from pgraft.node.config import NodeConfig
from pgraft.statemachine import Result, StateMachine
from pgraft.storage.durable import DurableStorage
from pgraft.transport import PeerHello, TLSContexts, Transport

MAX_CLUSTER_ID = (1 << 63) - 1
ADOPTABLE_MAX_LOG = 1000
LOG_READ_MAX_BYTES = 4 << 20
"""Data bytes of one ``log_read`` reply: a 100,000-row read of large entries would
otherwise build a reply of gigabytes on the event loop."""


def address_context(address: str, port: int) -> bytes:
    """The ``ConfChange.context`` naming a member's peer address (contracts §4)."""
    return bytes(msgpack.packb({"address": address, "port": port}))


class Backend:
    def __init__(
        self,
        config: NodeConfig,
        secret: bytes | None,
        on_messages: Callable[[list[Message]], None],
        on_peer_hello: Callable[[PeerHello], bool],
    ) -> None:
        self._config = config
        self.storage = DurableStorage.open(
            config.data_dir, node_id=config.node_id, cluster_name=config.cluster_name
        )
        self.sm = StateMachine(self.storage)  # attaches itself to the storage
        self.rng = random.Random(os.urandom(16))
        tls = None
        if config.tls_cert:
            tls = TLSContexts.from_files(config.tls_cert, config.tls_key, config.tls_ca)
        self.transport = Transport(
            config.node_id,
            config.cluster_name,
            lambda: self.storage.cluster_id,
            config.address,
            config.port,
            on_messages=on_messages,
            on_peer_hello=on_peer_hello,
            secret=secret,
            ssl=tls,
            rng=random.Random(os.urandom(16)),
        )

    async def start(self) -> None:
        await self.transport.start()

    async def close(self) -> None:
        await self.transport.close()
        self.storage.close()

    # ------------------------------------------------------------ identity

    @property
    def cluster_id(self) -> int:
        return self.storage.cluster_id

    @property
    def initialized(self) -> bool:
        """True once this node has a cluster (bootstrapped, adopted, or restarted)."""
        return self.storage.cluster_id != 0

    def bootstrap(self) -> int:
        """Make this node a one-member cluster with a fresh id; returns the id. The
        configuration sits at index 0 and the term stays 0, so the first election makes
        term 1 (the seed's examples fence appends with term 1 on a fresh cluster)."""
        me = self._config.node_id
        cluster_id = random.SystemRandom().randint(1, MAX_CLUSTER_ID)
        if not self.storage.is_pristine:
            self.storage.reset()
        self.storage.bootstrap(ConfState(voters=frozenset({me})), cluster_id=cluster_id)
        return cluster_id

    def self_address_change(self) -> ConfChange:
        """``ADD_NODE`` of this node with its address: a no-op for the configuration of a
        node that is already a voter, it records the address in the log."""
        ctx = address_context(self._config.address, self._config.port)
        return ConfChange(ConfChangeType.ADD_NODE, self._config.node_id, ctx)

    def adoptable(self) -> bool:
        """No cluster yet, or only this node's own bootstrap: no other member ever, the
        log never compacted, and nothing in it but no-ops and membership entries."""
        if not self.initialized:
            return True
        conf = self.storage.conf_state
        if conf.learners or conf.voters != {self._config.node_id}:
            return False  # another member, or adopted already (empty until its log arrives)
        first, last = self.storage.first_index(), self.storage.last_index()
        if first != 1 or self.storage.hard_state.commit > ADOPTABLE_MAX_LOG:
            return False
        entries = self.storage.entries(first, last + 1) if last >= first else []
        return all(e.type == EntryType.CONF_CHANGE or not e.data for e in entries)

    def adopt(self, cluster_id: int) -> None:
        """Wipe everything and belong to ``cluster_id`` as a joining member (empty
        configuration: the leader's log or snapshot will tell us the members)."""
        if not self.storage.is_pristine:
            self.storage.reset()
        self.storage.set_cluster_id(cluster_id)

    # ------------------------------------------------------------ the Raft recipe

    def persist(self, rd: Ready) -> dict[bytes, Result]:
        """One transaction for the whole Ready; the applied commands' results by request
        id. It is fsynced unless it only advances the commit index and applies entries
        (``sync=False`` lets the storage skip that fsync: see ``save_ready``)."""
        batch = self.sm.batch(rd.committed_entries) if rd.committed_entries else None
        self.storage.save_ready(
            rd.entries, rd.hard_state, rd.snapshot, applied_updates=batch, sync=False
        )
        return batch.results if batch is not None else {}

    def send(self, messages: Sequence[Message]) -> None:
        self.transport.send_many(messages)

    def sync_peers(self) -> None:
        """Dial every member at its recorded address; forget removed ones."""
        conf = self.storage.conf_state
        members = self.members()
        wanted = (conf.voters | conf.learners) - {self._config.node_id}
        for nid in wanted:
            if nid in members and members[nid][1] > 0:
                host, port = members[nid]
                self.transport.set_peer_address(nid, host, port)
        for nid in members.keys() - wanted:
            if conf.voters and self.transport.peer_address(nid) is not None:
                self.transport.remove_peer(nid)

    def maybe_compact(self, threshold: int, retention: int) -> int | None:
        return self.storage.maybe_compact(threshold, retention)

    # ------------------------------------------------------------ reads

    def members(self) -> dict[int, tuple[str, int]]:
        """Member addresses as recorded in the log: {node_id: (address, port)}."""
        return {m.node_id: (m.address, m.port) for m in self.sm.members().values()}

    def log_read(self, lo: int, hi: int, limit: int) -> list[tuple[int, int, str]]:
        """At most ``limit`` records and about ``LOG_READ_MAX_BYTES`` of data (at least
        one record): a reply with fewer rows than asked continues at last index + 1."""
        rows = self.sm.log_read(lo, hi, limit, LOG_READ_MAX_BYTES)
        return [(r.index, r.term, r.data.decode("utf-8", "replace")) for r in rows]

    def kv_get(self, key: str) -> str | None:
        return self.sm.kv_get(key)[0]

    def last_contact_ms(self, node_id: int) -> int | None:
        if node_id == self._config.node_id:
            return 0
        seen = self.transport.last_contact(node_id)
        return None if seen is None else int((time.monotonic() - seen) * 1000)
