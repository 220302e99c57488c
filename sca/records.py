"""The records that flow between steps: small frozen dataclasses, one JSON line each.

Every record has a content-hash ``id`` (from the fields that define it) and the ``parent_id`` of the
record it was made from, so lineage is a chain of joins:
seed -> concepts -> instruction -> response -> execution -> SFT example.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

R = TypeVar("R")


def make_id(*parts: str) -> str:
    """Stable 16-hex id from the defining content of a record."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True, kw_only=True)
class Seed:
    """A Python function with a docstring, mined from source, with the imports it needs."""

    id: str
    parent_id: str  # "" for roots
    code: str
    name: str  # function name
    source: str  # file path or dataset row it came from, for audit


@dataclass(frozen=True, slots=True, kw_only=True)
class Concepts:
    """S->C: the programming concepts a seed exercises."""

    id: str
    parent_id: str  # Seed.id
    concepts: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Instruction:
    """C->I: a task written from concepts, with the sampled category and difficulty."""

    id: str
    parent_id: str  # Concepts.id
    text: str
    category: str  # "function" | "class" | "program"
    difficulty: str  # "easy" | "medium" | "hard"


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """I->R: one sampled response (reasoning + solution) and the tests it wrote for itself."""

    id: str
    parent_id: str  # Instruction.id
    sample: int  # index among the n samples drawn for the instruction
    text: str  # the response shown to the user (reasoning + solution code block, tests removed)
    solution: str  # the solution code
    tests: str  # the test code


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """The sandbox's verdict on one response's solution run with its tests."""

    id: str
    parent_id: str  # Response.id
    verdict: str  # passed | failed | error | timeout | memory | crash | no_tests | infra
    error_type: str = ""  # exception class name for verdict == "error"
    duration_s: float = 0.0
    tier: str = ""  # sandbox isolation tier: A | B | C
    detail: str = ""  # tail of stderr, for debugging failure modes
    strong_tests: bool | None = None  # None: not checked; True: the tests failed on a stub; False: a stub passed


@dataclass(frozen=True, slots=True, kw_only=True)
class SFTExample:
    """One training example in TRL's conversational prompt/completion format."""

    id: str
    parent_id: str  # Response.id of the chosen response
    prompt: list[dict[str, str]]
    completion: list[dict[str, str]]
    lineage: dict[str, str] = field(default_factory=dict)  # seed/concepts/instruction/execution ids


def to_json(record: Any) -> str:
    return json.dumps(dataclasses.asdict(record), ensure_ascii=False, sort_keys=True)


def from_dict(cls: type[R], data: dict[str, Any], where: str = "") -> R:
    """Build a record, failing with the file/line and the offending field names on a schema mismatch."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    required = {
        f.name
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    unknown, missing = set(data) - names, required - set(data)
    if unknown or missing:
        raise ValueError(
            f"{where}: not a {cls.__name__} record (unknown fields {sorted(unknown)}, missing {sorted(missing)}); "
            "was this file written by another version of sca or by another step?"
        )
    return cls(**data)


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalSample:
    """One generated solution to a benchmark task and EvalPlus's verdicts on it (eval step)."""

    id: str
    parent_id: str  # "" (benchmark tasks are roots)
    benchmark: str  # humaneval | mbpp
    task_id: str  # HumanEval/0, Mbpp/2, ...
    sample: int  # index among the n samples drawn for the task
    prompt: str  # the user message (instruct models) or the raw prompt (base models)
    completion: str  # what the model wrote after the prompt and response prefix
    solution: str  # the program that was tested (extracted code + the prompt's imports)
    finish_reason: str = ""  # stop | length (truncated)
    base_verdict: str = ""  # pass | fail | timeout on the base tests; "" before scoring
    plus_verdict: str = ""  # the same on the extra tests (EvalPlus's plus pass = base and plus pass)
