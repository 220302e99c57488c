"""The text of one example: whether a response is well formed, and the asserts put into its instruction."""

from __future__ import annotations

import ast
import random
import re

from sca.generate.prompting import PLACEHOLDER_RE
from sca.records import Response

_PLACEHOLDER = PLACEHOLDER_RE  # the same rule generation applies: `return NotImplemented` is legitimate
_FENCE = re.compile(r"```[\w+-]*\n.*?```", re.DOTALL)
_AUGMENT_BLOCKERS = re.compile(r"\b(assert|for example|test)", re.IGNORECASE)
_INERT = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom, ast.Pass)


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _callee(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def format_problem(r: Response) -> str | None:
    """Why a response is malformed (the drop reason), or None."""
    try:
        ast.parse(r.solution)
    except SyntaxError:
        return "format_solution_unparsable"
    if not r.solution.strip():
        return "format_no_solution"
    try:
        tests = ast.parse(r.tests)
    except SyntaxError:
        return "format_tests_unparsable"
    asserts = any(
        isinstance(n, ast.Assert)
        or (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute | ast.Name)
            and _callee(n.func).startswith("assert")
        )
        for n in ast.walk(tests)
    )
    if not asserts:
        return "format_tests_no_assert"
    if all(isinstance(n, _INERT) or _is_docstring(n) for n in tests.body):
        return "format_tests_not_invoked"
    if not _FENCE.search(r.text):
        return "format_no_code_block"
    if r.tests.strip() and r.tests.strip() in r.text:
        return "format_tests_in_response"
    if _PLACEHOLDER.search(r.text) or _PLACEHOLDER.search(r.solution):
        return "format_placeholder"
    return None


def augment(instruction: str, tests: str, rng: random.Random, p: float, max_asserts: int) -> str:
    """With probability ``p``, append up to ``max_asserts`` of the tests' top-level asserts (paper C.1)."""
    if p <= 0 or rng.random() >= p or _AUGMENT_BLOCKERS.search(instruction):
        return instruction
    tree = ast.parse(tests)
    asserts = [ast.get_source_segment(tests, n) or "" for n in tree.body if isinstance(n, ast.Assert)]
    asserts = [a for a in asserts if a and "\n" not in a]
    if not asserts:
        return instruction
    k = rng.randint(1, min(max_asserts, len(asserts)))
    picked = sorted(rng.sample(range(len(asserts)), k))
    noun = "assertion" if k == 1 else "assertions"
    block = "\n".join(asserts[i] for i in picked)
    return f"{instruction}\n\nYour code should pass the following {noun}:\n```python\n{block}\n```"
