"""The core must stay pure: no I/O, no clocks, no global randomness.

Every module of ``pgraft.core`` is parsed with ``ast`` and may import only from a
whitelist; calls to ``open``/``print``/``input``/``eval``/``exec``/``__import__`` and calls of
module-level ``random`` functions (``random.random()``, ``random.randrange()``...: the
global generator) are refused. The checker itself is tested on bad snippets, so a broken
checker cannot pass silently.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pgraft.core

ALLOWED_MODULES = {
    "__future__",
    "collections",
    "collections.abc",
    "dataclasses",
    "enum",
    "random",  # only for the ``random.Random`` type of the injected generator
    "struct",
    "typing",
}
ALLOWED_PREFIX = "pgraft.core"
FORBIDDEN_CALLS = {"open", "print", "input", "eval", "exec", "compile", "__import__", "breakpoint"}
RANDOM_OK = {"Random"}


def violations(source: str) -> list[str]:
    """Human-readable reasons why ``source`` is not pure (empty when it is)."""
    tree = ast.parse(source)
    found: list[str] = []
    random_aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not _allowed(alias.name):
                    found.append(f"line {node.lineno}: import {alias.name}")
                if alias.name == "random":
                    random_aliases.add(alias.asname or "random")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0 and not _allowed(module):
                found.append(f"line {node.lineno}: from {module} import ...")
            if module == "random":
                for alias in node.names:
                    if alias.name not in RANDOM_OK:
                        found.append(f"line {node.lineno}: from random import {alias.name}")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                found.append(f"line {node.lineno}: call {func.id}()")
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id in random_aliases
                and func.attr not in RANDOM_OK
            ):
                found.append(f"line {node.lineno}: global random.{func.attr}()")
    return found


def _allowed(module: str) -> bool:
    return (
        module in ALLOWED_MODULES
        or module == ALLOWED_PREFIX
        or module.startswith(ALLOWED_PREFIX + ".")
    )


CORE_DIR = Path(pgraft.core.__file__).parent
CORE_FILES = sorted(CORE_DIR.glob("*.py"))


def test_core_has_modules() -> None:
    names = {p.name for p in CORE_FILES}
    assert {"raft.py", "rawnode.py", "log.py", "storage.py", "types.py"} <= names


@pytest.mark.parametrize("path", CORE_FILES, ids=[p.name for p in CORE_FILES])
def test_core_module_is_pure(path: Path) -> None:
    assert violations(path.read_text()) == []


@pytest.mark.parametrize(
    "snippet",
    [
        "import time",
        "import os.path",
        "import socket",
        "import asyncio",
        "import io",
        "import threading",
        "import subprocess",
        "from time import monotonic",
        "from datetime import datetime",
        "import logging",
        "x = open('f')",
        "print('hi')",
        "import random\nrandom.random()",
        "import random as r\nr.randrange(3)",
        "from random import randint",
        "import random\nrandom.seed(1)",
    ],
)
def test_checker_rejects_impure_snippets(snippet: str) -> None:
    assert violations(snippet)


@pytest.mark.parametrize(
    "snippet",
    [
        "import random\ndef f(rng: random.Random) -> int:\n    return rng.randrange(3)",
        "from collections import deque",
        "from pgraft.core.types import Entry",
        "from dataclasses import dataclass",
    ],
)
def test_checker_accepts_pure_snippets(snippet: str) -> None:
    assert violations(snippet) == []
