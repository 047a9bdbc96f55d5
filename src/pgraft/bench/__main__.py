"""Dispatcher: ``python -m pgraft.bench {core,cluster,pg} [options]``.

The subcommand's module is imported only when asked for; a missing one is reported
by name (exit status 2) instead of failing with a traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import cast

SUBCOMMANDS = {
    "core": ("pgraft.bench.core", "Raft core throughput, 3 nodes in one process"),
    "cluster": ("pgraft.bench.cluster", "node processes over TCP on loopback"),
    "pg": ("pgraft.bench.pg", "through PostgreSQL and the extension"),
}


def _usage() -> str:
    lines = ["usage: python -m pgraft.bench {core,cluster,pg} [options]", ""]
    lines += [f"  {name:<8} {about}" for name, (_, about) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] not in SUBCOMMANDS:
        print(f"unknown benchmark {argv[0]!r}\n{_usage()}", file=sys.stderr)
        return 2
    module_name = SUBCOMMANDS[argv[0]][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        print(
            f"benchmark {argv[0]!r} is not available: module {module_name} is missing",
            file=sys.stderr,
        )
        return 2
    entry = cast(Callable[[list[str]], int], module.main)
    return entry(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
