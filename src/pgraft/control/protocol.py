"""Wire format of the control API and typed access to request arguments.

Theory of operation
-------------------
A request is one line of JSON, ``{"op": str, "args": {...}}`` (``args`` may be omitted);
a reply is one line, ``{"ok": result}`` or ``{"error": {"code", "message"}}``.
``parse_request`` turns a line into ``(op, Args)`` or raises ``ControlError``; ``Args``
reads arguments with the checks every handler needs, so the error codes are uniform:
a missing or JSON-null argument is ``22004``, a value of the wrong type ``22023`` and a
number outside its range ``22003``.
"""

from __future__ import annotations

import json
from typing import Any, Final

from pgraft.control.errors import (
    INVALID_PARAMETER,
    NULL_VALUE,
    OUT_OF_RANGE,
    ControlError,
)

MAX_INT: Final = (1 << 63) - 1


def encode_reply(result: object) -> bytes:
    return json.dumps({"ok": result}, separators=(",", ":")).encode() + b"\n"


def encode_error(err: ControlError) -> bytes:
    return json.dumps(err.to_json(), separators=(",", ":")).encode() + b"\n"


def encode_request(op: str, args: dict[str, Any] | None = None) -> bytes:
    return json.dumps({"op": op, "args": args or {}}, separators=(",", ":")).encode() + b"\n"


class Args:
    """The ``args`` object of one request."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw

    def _get(self, key: str) -> object:
        value = self._raw.get(key)
        if value is None:
            raise ControlError(NULL_VALUE, f"argument {key!r} must not be null")
        return value

    def has(self, key: str) -> bool:
        return self._raw.get(key) is not None

    def integer(self, key: str, lo: int = 0, hi: int = MAX_INT) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ControlError(INVALID_PARAMETER, f"argument {key!r} must be an integer")
        if not lo <= value <= hi:
            raise ControlError(OUT_OF_RANGE, f"argument {key!r} = {value} is out of range")
        return value

    def integer_or(self, key: str, default: int, lo: int = 0, hi: int = MAX_INT) -> int:
        return self.integer(key, lo, hi) if self.has(key) else default

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise ControlError(INVALID_PARAMETER, f"argument {key!r} must be a string")
        return _utf8(key, value)

    def optional_text(self, key: str) -> str | None:
        """A string that may be JSON null (e.g. the expected value of a compare-and-set)."""
        value = self._raw.get(key)
        if value is not None and not isinstance(value, str):
            raise ControlError(INVALID_PARAMETER, f"argument {key!r} must be a string or null")
        return None if value is None else _utf8(key, value)

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise ControlError(INVALID_PARAMETER, f"argument {key!r} must be a boolean")
        return value


def _utf8(key: str, value: str) -> str:
    """``value`` if it can be encoded as UTF-8 (JSON admits lone surrogates like
    "\\ud800", which no entry or key may carry)."""
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ControlError(
                INVALID_PARAMETER, f"argument {key!r} is not valid Unicode (lone surrogate)"
            ) from None
    return value


def parse_request(line: bytes) -> tuple[str, Args]:
    """Decode one request line. Raises ``ControlError`` (22023) when malformed."""
    try:
        obj = json.loads(line.decode())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # deeply nested
        raise ControlError(INVALID_PARAMETER, f"request is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ControlError(INVALID_PARAMETER, "request must be a JSON object")
    op = obj.get("op")
    if not isinstance(op, str):
        raise ControlError(INVALID_PARAMETER, "request needs a string 'op'")
    args = obj.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ControlError(INVALID_PARAMETER, "'args' must be a JSON object")
    return op, Args(args)
