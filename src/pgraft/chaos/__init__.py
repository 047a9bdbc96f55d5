"""Fault injection for pgraft: run real nodes under faults, record, check.

``history`` records client operations; ``linearizability`` and ``logcheck`` judge them.
The harness that runs nodes under faults is ``python -m pgraft.chaos``.
"""
