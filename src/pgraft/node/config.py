"""The node's configuration file (``node.json``) and its strict validation.

Theory of operation
-------------------
The node is started by PostgreSQL's background worker (or by an operator) with a JSON
file whose keys are fixed by docs/contracts.md §2. Reading is strict: an unknown key, a
value of the wrong type or a value out of range raises ``ConfigInvalid`` with a one-line
message naming the key, and the entry point turns that into exit status 2. Missing keys
take the defaults below (the seed's GUC defaults: heartbeat 1000 ms, election timeout
5000 ms), except ``node_id``, ``address``, ``port``, ``data_dir`` and ``cluster_name``,
which have no sensible default.

Only ``heartbeat_ms``, ``election_timeout_ms`` and ``debug`` may change on SIGHUP
(``RELOADABLE``); the runtime compares the old and new ``NodeConfig`` and logs that the
other changed keys need a restart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Final

MAX_NODE_ID: Final = (1 << 63) - 1
RELOADABLE: Final = frozenset({"heartbeat_ms", "election_timeout_ms", "debug"})


class ConfigInvalid(Exception):
    """The configuration cannot be used; the message names the offending key."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    node_id: int
    cluster_name: str
    address: str
    port: int
    data_dir: str
    control_socket: str = ""
    heartbeat_ms: int = 1000
    election_timeout_ms: int = 5000
    debug: bool = False
    secret_file: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    pg_port: int = 0  # 0: not running beside PostgreSQL
    max_entry_bytes: int = 1 << 20
    snapshot_threshold: int = 10000  # entries applied since the last snapshot
    log_retention: int = 5000  # entries kept behind a snapshot for slow followers
    health_period_ms: int = 5000
    bootstrap: bool = False  # with no state on disk: initialize as a 1-member cluster

    @property
    def socket_path(self) -> Path:
        """The control socket; defaults to ``<data_dir>/pgraft.sock``."""
        return Path(self.control_socket or str(Path(self.data_dir) / "pgraft.sock"))

    def with_changes(self, **changes: Any) -> NodeConfig:
        """A copy with ``changes`` applied and validated again."""
        new = replace(self, **changes)
        _check_ranges(new)
        return new

    def timing(self) -> tuple[int, int, int]:
        """(tick_ms, heartbeat_tick, election_tick) for the core's logical clock.

        The tick is small enough that the heartbeat is at least one tick and the
        election timeout at least ten ticks, so randomisation has room."""
        tick_ms = max(1, min(self.heartbeat_ms, self.election_timeout_ms // 10))
        heartbeat_tick = max(1, self.heartbeat_ms // tick_ms)
        election_tick = max(heartbeat_tick + 1, self.election_timeout_ms // tick_ms)
        return tick_ms, heartbeat_tick, election_tick


_REQUIRED: Final = ("node_id", "cluster_name", "address", "port", "data_dir")
_TYPES: Final[dict[str, str]] = {f.name: str(f.type) for f in fields(NodeConfig)}
_PY_TYPES: Final[dict[str, type]] = {"int": int, "str": str, "bool": bool}


def _check_type(key: str, value: object) -> None:
    want = _PY_TYPES[_TYPES[key]]
    ok = isinstance(value, want) and (want is bool or not isinstance(value, bool))
    if not ok:
        raise ConfigInvalid(f"config key {key!r}: expected {want.__name__}, got {value!r}")


def _range(key: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise ConfigInvalid(f"config key {key!r}: {value} is out of range [{lo}, {hi}]")


def _check_ranges(c: NodeConfig) -> None:
    _range("node_id", c.node_id, 1, MAX_NODE_ID)
    _range("port", c.port, 1, 65535)
    _range("pg_port", c.pg_port, 0, 65535)
    _range("heartbeat_ms", c.heartbeat_ms, 1, 600_000)
    _range("election_timeout_ms", c.election_timeout_ms, 2, 3_600_000)
    # An entry travels inside one transport frame (64 MiB) with its message header.
    _range("max_entry_bytes", c.max_entry_bytes, 64, 32 << 20)
    _range("snapshot_threshold", c.snapshot_threshold, 1, 1 << 40)
    _range("log_retention", c.log_retention, 0, 1 << 40)
    _range("health_period_ms", c.health_period_ms, 1, 3_600_000)
    for key in ("cluster_name", "address", "data_dir"):
        if not getattr(c, key):
            raise ConfigInvalid(f"config key {key!r}: must not be empty")
    if c.election_timeout_ms <= c.heartbeat_ms:
        raise ConfigInvalid(
            f"config key 'election_timeout_ms': {c.election_timeout_ms} must be greater "
            f"than heartbeat_ms ({c.heartbeat_ms})"
        )
    if c.pg_port == c.port:
        raise ConfigInvalid(
            f"config key 'port': {c.port} is PostgreSQL's own port (pg_port); the Raft "
            "peer port must differ"
        )
    if bool(c.tls_cert) != bool(c.tls_key) or bool(c.tls_cert) != bool(c.tls_ca):
        raise ConfigInvalid(
            "config key 'tls_cert': tls_cert, tls_key and tls_ca go together (mutual TLS)"
        )


def parse_config(raw: object) -> NodeConfig:
    """Validate a decoded JSON object. Raises ``ConfigInvalid``."""
    if not isinstance(raw, dict):
        raise ConfigInvalid("config: the top level must be a JSON object")
    for key in raw:
        if key not in _TYPES:
            raise ConfigInvalid(f"config key {key!r}: unknown key")
    for key in _REQUIRED:
        if key not in raw:
            raise ConfigInvalid(f"config key {key!r}: missing (required)")
    for key, value in raw.items():
        _check_type(key, value)
    config = NodeConfig(**raw)
    _check_ranges(config)
    return config


def load_config(path: str | Path) -> NodeConfig:
    """Read and validate ``path``. Raises ``ConfigInvalid`` (also for I/O and JSON errors)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigInvalid(f"config file {str(path)!r}: {exc.strerror}") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigInvalid(f"config file {str(path)!r}: invalid JSON ({exc})") from exc
    return parse_config(raw)


def read_secret(config: NodeConfig) -> bytes | None:
    """The shared secret (file contents without trailing newline), or None when unset.

    Raises ``ConfigInvalid`` when the file cannot be read or is empty."""
    if not config.secret_file:
        return None
    try:
        data = Path(config.secret_file).read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ConfigInvalid(f"config key 'secret_file': {exc.strerror}") from exc
    if not data:
        raise ConfigInvalid("config key 'secret_file': the file is empty")
    return data
