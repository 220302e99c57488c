"""Exact-type JSON encoding of a candidate's return values, and the trusted comparison.

The child encodes; the supervisor decodes and compares. Only plain built-in values cross: a subclass
of ``int`` or an object whose ``__eq__`` always says yes is rejected at encoding time, so it can never
reach ``==`` in the trusted process. JSON only: nothing from the child is ever unpickled.
"""

from __future__ import annotations

import math
from typing import Any

MAX_DEPTH = 100


class NonPlainOutput(TypeError):
    pass


def encode(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise NonPlainOutput("output nested too deeply")
    t = type(value)
    if value is None or t is bool or t is int or t is str:
        return value
    if t is float:
        # NaN and infinities survive json's non-standard literals; tag them anyway for clarity.
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if t is list:
        return [encode(v, depth + 1) for v in value]
    if t is tuple:
        return {"__tuple__": [encode(v, depth + 1) for v in value]}
    if t is set or t is frozenset:
        return {"__set__": [encode(v, depth + 1) for v in value], "frozen": t is frozenset}
    if t is dict:
        return {"__dict__": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if t is bytes:
        return {"__bytes__": value.hex()}
    if t is complex:
        return {"__complex__": [value.real, value.imag]}
    raise NonPlainOutput(f"non-plain output of type {t.__module__}.{t.__qualname__}")


def decode(data: Any) -> Any:
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "__tuple__" in data:
        return tuple(decode(v) for v in data["__tuple__"])
    if "__set__" in data:
        items = (decode(v) for v in data["__set__"])
        return frozenset(items) if data.get("frozen") else set(items)
    if "__dict__" in data:
        return {decode(k): decode(v) for k, v in data["__dict__"]}
    if "__float__" in data:
        return float(data["__float__"])
    if "__bytes__" in data:
        return bytes.fromhex(data["__bytes__"])
    if "__complex__" in data:
        return complex(*data["__complex__"])
    raise ValueError(f"unknown encoded value {data!r}")


def equal(out: Any, expected: Any, atol: float = 0.0, rtol: float = 1e-7) -> bool:
    """EvalPlus-style equality: exact for everything but floats, which are compared with closeness
    (``rtol`` like ``np.allclose`` in evalplus, plus the task's ``atol``) element-wise in sequences."""
    if isinstance(expected, float) or (isinstance(out, float) and isinstance(expected, int | float)):
        if type(out) not in (int, float) or type(expected) not in (int, float):
            return False
        if math.isnan(expected) and math.isnan(out):
            return True
        return math.isclose(out, expected, rel_tol=rtol, abs_tol=atol) or out == expected
    if isinstance(expected, list | tuple) and any(isinstance(x, float) for x in expected):
        return (
            type(out) is type(expected)
            and len(out) == len(expected)
            and all(equal(o, e, atol, rtol) for o, e in zip(out, expected, strict=True))
        )
    return bool(out == expected)
