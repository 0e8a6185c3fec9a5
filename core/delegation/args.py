"""Validation of task arguments: every field typed, bounded and named in the error."""
from __future__ import annotations

import builtins
import math
from typing import Any

from core.errors import BadRequest

_MISSING = object()


class Args:
    """Reads a request's ``args`` map; each getter checks type and range.

    Call :meth:`done` last: a key no getter asked for is refused, so a typo
    is an error rather than a silently ignored option. (The getters are named after
    the types they return, so the annotations below spell those ``builtins.int`` etc.)
    """

    def __init__(self, task_type: str, args: Any):
        if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
            raise BadRequest(f"{task_type}: arguments must be a map with string keys")
        self.task_type, self.args = task_type, args
        self.used: set[str] = set()

    def _get(self, key: str, default: Any) -> Any:
        self.used.add(key)
        value = self.args.get(key, default)
        if value is _MISSING:
            raise BadRequest(f"{self.task_type}: argument {key!r} is required")
        return value

    def bad(self, key: str, what: str, value: Any) -> BadRequest:
        return BadRequest(f"{self.task_type}: argument {key!r} must be {what} (got {value!r:.60})")

    def int(self, key: str, lo: int, hi: int, default: Any = _MISSING) -> int:
        value = self._get(key, default)
        if type(value) is not int or not lo <= value <= hi:
            raise self.bad(key, f"an integer from {lo} to {hi}", value)
        return value

    def float(self, key: builtins.str, lo: builtins.float, hi: builtins.float,
              default: Any = _MISSING) -> builtins.float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or not lo <= value <= hi:
            raise self.bad(key, f"a number from {lo} to {hi}", value)
        return float(value)

    def str(self, key: builtins.str, max_len: builtins.int, default: Any = _MISSING,
            choices=None) -> builtins.str:
        value = self._get(key, default)
        if not isinstance(value, str) or len(value) > max_len:
            raise self.bad(key, f"text of at most {max_len} characters", value)
        if choices is not None and value not in choices:
            raise self.bad(key, f"one of {', '.join(choices)}", value)
        return value

    def bytes(self, key: builtins.str, max_len: builtins.int, default: Any = _MISSING) -> builtins.bytes:
        value = self._get(key, default)
        if not isinstance(value, (bytes, bytearray)) or not 0 < len(value) <= max_len:
            shown = f"{len(value)} bytes" if isinstance(value, (bytes, bytearray)) else type(value).__name__
            raise BadRequest(f"{self.task_type}: argument {key!r} must be 1 to {max_len} bytes (got {shown})")
        return bytes(value)

    def floats(self, key: builtins.str, n_min: builtins.int, n_max: builtins.int, lo: builtins.float,
               hi: builtins.float, default: Any = _MISSING) -> list[builtins.float]:
        value = self._get(key, default)
        if not isinstance(value, (list, tuple)) or not n_min <= len(value) <= n_max:
            raise self.bad(key, f"a list of {n_min} to {n_max} numbers", value)
        out = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (int, float)) \
                    or not math.isfinite(item) or not lo <= item <= hi:
                raise self.bad(key, f"a list of numbers from {lo} to {hi}", value)
            out.append(float(item))
        return out

    def optional(self, key: builtins.str) -> bool:
        """True if ``key`` was given (and marks it as known)."""
        self.used.add(key)
        return key in self.args

    def done(self) -> None:
        extra = sorted(set(self.args) - self.used)
        if extra:
            raise BadRequest(f"{self.task_type}: unknown argument(s) {', '.join(extra)}")
