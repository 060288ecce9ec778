"""What a storage holds: bytes as they are, other plain values in a tagged encoding.

The backend stores bytes only (its serializer's output), and those are written and read
back untouched. A storage used on its own, as both peers allow (``await
SQLiteCache("db", "table").write("k", "v")``), also takes text, numbers, datetimes, lists
and dicts of them, and gives back what was written. They are encoded as a tag then JSON
with typed leaves, never pickle: reading a hostile item can fail, but never run code.

The tag starts with byte 0xFF, which no UTF-8 text, envelope or pickle starts with; bytes
that happen to start with it are escaped, so the encoding is unambiguous.
"""

from __future__ import annotations

import base64
import json
from datetime import date, datetime, timedelta
from typing import Any

TAG = b"\xffACV"
_TEXT = TAG + b"s"
_JSON = TAG + b"j"
_BYTES = TAG + b"b"

Value = Any
"""bytes, str, int, float, bool, None, datetime, date, timedelta, or a list, tuple or
dict (str keys) of them."""
PLAIN_TYPES = (bytes, bytearray, memoryview, str, int, float, bool, datetime, date, timedelta,
               list, tuple, dict)
"""The types a storage keeps as they are (anything else given to a responses storage is
taken for a response)."""


def encode_value(value: Value) -> bytes:
    """``value`` as the bytes a storage keeps."""
    if isinstance(value, bytes):
        return _BYTES + value if value.startswith(TAG) else value
    if isinstance(value, (bytearray, memoryview)):
        return encode_value(bytes(value))
    if isinstance(value, str):
        return _TEXT + value.encode("utf-8", "surrogatepass")
    return _JSON + json.dumps(_typed(value), separators=(",", ":")).encode()


def decode_value(data: bytes) -> Value:
    """What :func:`encode_value` was given. A malformed tagged item raises ValueError."""
    if not data.startswith(TAG):
        return data
    kind, payload = data[len(TAG) : len(TAG) + 1], data[len(TAG) + 1 :]
    if kind == b"s":
        return payload.decode("utf-8", "surrogatepass")
    if kind == b"b":
        return payload
    if kind == b"j":
        try:
            return _untyped(json.loads(payload))
        except (KeyError, TypeError, IndexError) as e:
            raise ValueError(f"malformed stored value: {e}") from e
    raise ValueError(f"unknown stored value kind {kind!r}")


def _typed(value: Value) -> Any:
    """A JSON tree where every leaf says its type, so a str never reads back as a date."""
    if value is None or isinstance(value, bool):
        return ["n" if value is None else "t", value]
    if isinstance(value, int):
        return ["i", value]
    if isinstance(value, float):
        return ["f", repr(value)]  # repr: exact, and nan / inf survive
    if isinstance(value, str):
        return ["s", value]
    if isinstance(value, bytes):
        return ["b", base64.b64encode(value).decode()]
    if isinstance(value, datetime):
        return ["d", value.isoformat()]
    if isinstance(value, date):
        return ["D", value.isoformat()]
    if isinstance(value, timedelta):
        return ["T", [value.days, value.seconds, value.microseconds]]
    if isinstance(value, (list, tuple)):
        return ["l", [_typed(v) for v in value]]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("a stored dict must have str keys")
        return ["m", {k: _typed(v) for k, v in value.items()}]
    raise TypeError(
        f"a storage holds bytes, str, numbers, datetimes, lists and dicts, not "
        f"{type(value).__name__}; store it through a serializer (e.g. serializer='pickle')"
    )


def _untyped(node: Any) -> Value:
    kind, payload = node
    if kind in ("n", "t", "i", "s"):
        return payload
    if kind == "f":
        return float(payload)
    if kind == "b":
        return base64.b64decode(payload)
    if kind == "d":
        return datetime.fromisoformat(payload)
    if kind == "D":
        return date.fromisoformat(payload)
    if kind == "T":
        return timedelta(*payload)
    if kind == "l":
        return [_untyped(v) for v in payload]
    if kind == "m":
        return {k: _untyped(v) for k, v in payload.items()}
    raise ValueError(f"unknown stored value type {kind!r}")


__all__ = ["PLAIN_TYPES", "TAG", "Value", "decode_value", "encode_value"]
