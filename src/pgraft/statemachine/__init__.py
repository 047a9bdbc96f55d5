"""What committed entries do: the replicated user log, a key-value map and the
membership, stored in the same SQLite database as the log (see ``machine.py``)."""

from pgraft.statemachine.commands import CommandError
from pgraft.statemachine.image import ImageError
from pgraft.statemachine.machine import (
    ApplyBatch,
    LogRecord,
    Member,
    Result,
    StateMachine,
    StateMachineError,
)

__all__ = [
    "ApplyBatch",
    "CommandError",
    "ImageError",
    "LogRecord",
    "Member",
    "Result",
    "StateMachine",
    "StateMachineError",
]
