"""Errors the control API returns, each with a SQLSTATE-like code.

Theory of operation
-------------------
Every failure a client can see is a ``ControlError`` carrying one of the codes below
(docs/contracts.md §3). The PostgreSQL extension raises them with that SQLSTATE, so a
``PRxxx`` code is pgraft's own class and the rest are standard PostgreSQL codes with
their usual meaning. Anything else that escapes a handler is reported as ``XX000``.
"""

from __future__ import annotations

from typing import Final

NULL_VALUE: Final = "22004"
INVALID_PARAMETER: Final = "22023"
OUT_OF_RANGE: Final = "22003"
DUPLICATE_NODE: Final = "42710"
UNKNOWN_NODE: Final = "42704"
TOO_LARGE: Final = "54000"
NOT_READY: Final = "55000"
NO_LEADER: Final = "PR001"
DROPPED: Final = "PR002"
TERM_MISMATCH: Final = "PR003"
TIMEOUT: Final = "57014"
IO_FAILURE: Final = "58030"
INTERNAL: Final = "XX000"

ALL_CODES: Final = frozenset(
    {
        NULL_VALUE,
        INVALID_PARAMETER,
        OUT_OF_RANGE,
        DUPLICATE_NODE,
        UNKNOWN_NODE,
        TOO_LARGE,
        NOT_READY,
        NO_LEADER,
        DROPPED,
        TERM_MISMATCH,
        TIMEOUT,
        IO_FAILURE,
        INTERNAL,
    }
)


class ControlError(Exception):
    """A request failed; ``code`` is SQLSTATE-like, ``message`` is for humans."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def to_json(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message}}


def not_initialized() -> ControlError:
    return ControlError(NOT_READY, "not initialized — call pgraft_init()")
