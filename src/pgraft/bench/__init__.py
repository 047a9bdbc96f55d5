"""Benchmarks: programs that measure and print one JSON object; never part of the tests.

Run ``python -m pgraft.bench <name> [options]``. Each benchmark is a module
``pgraft.bench.<name>`` with a ``main(argv: list[str]) -> int`` function; the
dispatcher imports only the one asked for, so a benchmark whose dependencies (a
running PostgreSQL, the node runtime) are absent does not stop the others.
"""
