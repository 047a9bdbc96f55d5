"""Interaction-transcript harness for the Raft core (in the style of etcd's datadriven tests).

Theory of operation
-------------------
A transcript file is a sequence of *directives*: a command line, a ``----`` line, and
the output the command produced, ended by a blank line. ``#`` lines between
directives are comments and are kept verbatim. Running a file replays every command
against a fresh ``Env`` and rebuilds the file text with the *actual* outputs; the test
compares that text with the file (a unified diff on mismatch) and ``pytest tests/core
--rewrite`` writes it back. Outputs never contain blank lines, so a blank line always
ends one.

The commands and the world they act on are described in ``transcript_env``; the
renderings of values in ``transcript_fmt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transcript_env import CommandError, Env


@dataclass
class Directive:
    comments: list[str]  # comment / blank lines before the command, verbatim
    command: str
    line: int


def parse(text: str) -> tuple[list[Directive], list[str]]:
    """Split a transcript into directives and the trailing comment lines."""
    lines = text.splitlines()
    directives: list[Directive] = []
    pending: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            pending.append(line)
            i += 1
            continue
        if i + 1 >= len(lines) or lines[i + 1] != "----":
            raise CommandError(f"line {i + 1}: command {line!r} is not followed by ----")
        directives.append(Directive(pending, line, i + 1))
        pending = []
        i += 2
        while i < len(lines) and lines[i].strip():
            i += 1
        i += 1  # the blank line ending the output
    return directives, pending


def run(text: str) -> str:
    """Replay a transcript and return its text with the actual outputs."""
    directives, trailer = parse(text)
    env = Env()
    out: list[str] = []
    for d in directives:
        out.extend(d.comments)
        out.append(d.command)
        out.append("----")
        try:
            result = env.execute(d.command)
        except CommandError as exc:
            raise CommandError(f"line {d.line}: {exc}") from exc
        out.extend(result or ["ok"])
        out.append("")
    out.extend(trailer)
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out) + "\n"


def run_file(path: Path) -> str:
    return run(path.read_text())
