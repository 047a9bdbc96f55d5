"""``python -m pgraft.node --config node.json [--parent-pid N]``: run one Raft node.

Exit status: 0 after a clean stop (SIGTERM, parent gone), 2 for an invalid
configuration (one line on stderr naming the key), 1 when the node cannot start or
fails (storage corrupt, locked or belonging to another node, port in use) or a fatal
error stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from pgraft.core.types import StorageError
from pgraft.node.config import ConfigInvalid, load_config, parse_config, read_secret
from pgraft.node.ops import Op

EXIT_FAILURE = 1
EXIT_CONFIG = 2


def _run_loop(coro: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop when it is installed (much faster sockets), else asyncio's loop;
    ``PGRAFT_EVENT_LOOP=asyncio`` forces the stock loop (for debugging)."""
    try:
        if os.environ.get("PGRAFT_EVENT_LOOP") == "asyncio":
            raise ImportError("stock asyncio loop requested")
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    result: int = uvloop.run(coro)
    return result


def run_app(
    config_source: str | dict[str, Any],
    parent_pid: int | None,
    extra_ops: dict[str, Op] | None = None,
) -> int:
    """Run a node until it stops; the exit status. ``config_source`` is the path of a
    configuration file (re-read on SIGHUP) or the configuration itself."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    path = Path(config_source) if isinstance(config_source, str) else None
    try:
        config = load_config(path) if path is not None else parse_config(config_source)
        secret = read_secret(config)
    except ConfigInvalid as exc:
        print(f"pgraft node: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from pgraft.node.app import NodeApp

    async def go() -> int:
        app = NodeApp(config, path, parent_pid, secret, extra_ops)
        return await app.run()

    try:
        return _run_loop(go())
    except (StorageError, OSError) as exc:
        logging.getLogger("pgraft.node").error("node %d cannot run: %s", config.node_id, exc)
        return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgraft.node", description=__doc__)
    parser.add_argument("--config", required=True, help="path of node.json")
    parser.add_argument("--parent-pid", type=int, default=None, help="exit when it goes away")
    ns = parser.parse_args(argv)
    return run_app(ns.config, ns.parent_pid)


if __name__ == "__main__":
    sys.exit(main())
