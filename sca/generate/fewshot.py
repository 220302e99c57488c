"""Our own few-shot examples, loaded from one structured file (``prompts/examples.yaml``).

Each generation example is one chain seed -> concepts -> (category, difficulty) -> instruction ->
response + tests, so the S->C, C->I and I->R prompts are all rendered from the same examples. The
judge examples are seeds with a Yes/No verdict on their docstring. ``tests/test_fewshot.py`` runs every
example's solution against its tests, so the examples cannot rot.

A template pins the examples file by sha256 (its ``@@ examples`` section), so the examples' content
enters the step hash through the template's. After editing the examples, re-pin the templates::

    python -m sca.generate.fewshot --pin
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import random
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
EXAMPLES_FILE = PROMPTS_DIR / "examples.yaml"
CATEGORIES = ("function", "class", "program")
DIFFICULTIES = ("easy", "medium", "hard")
T = TypeVar("T")


@dataclass(frozen=True)
class Example:
    """One worked chain: the fields every stage's prompt is rendered from."""

    name: str
    category: str
    difficulty: str
    seed: str
    concepts: tuple[str, ...]
    instruction: str
    response: str  # reasoning + exactly one ```python block
    tests: str  # a lead-in sentence + one ```python block of asserts

    def fields(self) -> dict[str, str]:
        return {
            "seed": self.seed.strip(),
            "concepts": ", ".join(self.concepts),
            "category": self.category,
            "difficulty": self.difficulty,
            "instruction": self.instruction.strip(),
            "response": self.response.strip(),
            "tests": self.tests.strip(),
        }


@dataclass(frozen=True)
class JudgeExample:
    """A seed and whether its docstring alone is enough to re-implement it (docs/method.md: the seed judge)."""

    name: str
    code: str
    answer: str  # "Yes" | "No"
    reason: str

    def fields(self) -> dict[str, str]:
        split = split_docstring(self.code)
        if split is None:
            raise ValueError(f"judge example {self.name!r} has no function with a docstring")
        body, doc = split
        return {"code": body, "docstring": doc, "answer": self.answer, "reason": self.reason.strip()}


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _require(row: dict[str, Any], key: str, where: str) -> Any:
    if key not in row or row[key] in (None, ""):
        raise ValueError(f"{where}: missing field {key!r}")
    return row[key]


def _load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("examples"), list):
        raise ValueError(f"{path}: expected a mapping with an 'examples' list (and a 'judge' list)")
    return data


def load_examples(path: Path = EXAMPLES_FILE) -> list[Example]:
    """The generation examples, validated: known category/difficulty, unique names, 2-5 concepts."""
    out = []
    for i, row in enumerate(_load_yaml(path)["examples"]):
        where = f"{path}: examples[{i}]"
        name = str(_require(row, "name", where))
        where = f"{path}: example {name!r}"
        category, difficulty = _require(row, "category", where), _require(row, "difficulty", where)
        if category not in CATEGORIES:
            raise ValueError(f"{where}: category {category!r} is not one of {list(CATEGORIES)}")
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"{where}: difficulty {difficulty!r} is not one of {list(DIFFICULTIES)}")
        concepts = _require(row, "concepts", where)
        if not isinstance(concepts, list) or not 2 <= len(concepts) <= 5 or any("," in c for c in concepts):
            raise ValueError(f"{where}: 'concepts' must be a list of 2-5 items without commas")
        out.append(
            Example(
                name=name,
                category=category,
                difficulty=difficulty,
                seed=_require(row, "seed", where),
                concepts=tuple(str(c).strip() for c in concepts),
                instruction=_require(row, "instruction", where),
                response=_require(row, "response", where),
                tests=_require(row, "tests", where),
            )
        )
    names = [e.name for e in out]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: duplicate example names {sorted({n for n in names if names.count(n) > 1})}")
    return out


def load_judge_examples(path: Path = EXAMPLES_FILE) -> list[JudgeExample]:
    out = []
    for i, row in enumerate(_load_yaml(path).get("judge") or []):
        where = f"{path}: judge[{i}]"
        answer = _require(row, "answer", where)
        if answer not in ("Yes", "No"):
            raise ValueError(f"{where}: answer must be Yes or No, not {answer!r}")
        out.append(
            JudgeExample(
                name=str(_require(row, "name", where)),
                code=_require(row, "code", where),
                answer=answer,
                reason=_require(row, "reason", where),
            )
        )
    if not out:
        raise ValueError(f"{path}: no 'judge' examples")
    return out


def sample(examples: Sequence[T], k: int, rng: random.Random) -> list[T]:
    """k distinct examples in random order (the reference's uniform sampling, without replacement)."""
    if not 0 <= k <= len(examples):
        raise ValueError(f"num_fewshots={k} but only {len(examples)} examples exist; lower num_fewshots")
    return rng.sample(list(examples), k)


def split_docstring(code: str) -> tuple[str, str] | None:
    """(code without its docstring, the docstring) of the first function in ``code``; None if it has none.

    The judge sees the two apart, so that it judges the description and not the implementation.
    """
    try:
        tree = ast.parse(textwrap.dedent(code))
    except SyntaxError:
        return None
    fn = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)), None)
    if fn is None or not fn.body:
        return None
    first = fn.body[0]
    if not (
        isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    ):
        return None
    doc = ast.get_docstring(fn) or ""
    if not doc.strip():
        return None
    lines = textwrap.dedent(code).splitlines()
    assert first.end_lineno is not None
    body = lines[: first.lineno - 1] + lines[first.end_lineno :]
    if len(fn.body) == 1:  # the docstring was the whole body: keep the function syntactically complete
        indent = re.match(r"\s*", lines[first.lineno - 1])
        body.insert(first.lineno - 1, (indent.group(0) if indent else "    ") + "...")
    return "\n".join(body).strip("\n"), doc.strip()


# ---- pinning: the examples' content enters each template's hash -------------------------------------

PIN_RE = re.compile(r"^(@@ examples\n)(\S+) sha256=([0-9a-f]+)$", re.MULTILINE)


def pin_templates(prompts_dir: Path = PROMPTS_DIR) -> list[Path]:
    """Rewrite the examples pin of every template that has one. Returns the templates changed."""
    changed = []
    for template in sorted(prompts_dir.glob("*.txt")):
        text = template.read_text(encoding="utf-8")
        m = PIN_RE.search(text)
        if m is None:
            continue
        sha = file_sha256(prompts_dir / m.group(2))
        new = text[: m.start()] + f"{m.group(1)}{m.group(2)} sha256={sha}" + text[m.end() :]
        if new != text:
            template.write_text(new, encoding="utf-8")
            changed.append(template)
    return changed


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Few-shot examples: check them, or re-pin the templates.")
    parser.add_argument("--pin", action="store_true", help="update the examples sha256 in every template")
    args = parser.parse_args(argv)
    examples, judge = load_examples(), load_judge_examples()
    print(f"{len(examples)} examples, {len(judge)} judge examples in {EXAMPLES_FILE}")
    if args.pin:
        for path in pin_templates():
            print(f"re-pinned {path}")


if __name__ == "__main__":
    main()
