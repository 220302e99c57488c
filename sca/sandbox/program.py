"""What the filter harness does to a program's source before running it, and the stub solution.

Pure AST work, no execution: ``prepare`` runs in the confined child (the parse is part of compiling
anyway), ``stub_solution`` in the supervisor. See docs/sandbox.md for the semantics they implement.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

CHECK = "__sca_check__"  # the counter every executed check calls; injected into the program's globals
_STDIN_NAMES = {"input", "stdin", "fileinput"}


@dataclass(frozen=True)
class Prepared:
    tree: ast.Module
    uncalled_tests: tuple[str, ...]  # top-level ``def test*`` whose name appears nowhere else in the source
    final_lines: tuple[int, int]  # span of the statement whose SystemExit(0) ends the program normally
    skipped_stdin_guard: bool  # an ``if __name__ == "__main__":`` block that reads stdin was left out


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    parts = [node.test.left, *node.test.comparators]
    names = [p for p in parts if isinstance(p, ast.Name) and p.id == "__name__"]
    consts = [p for p in parts if isinstance(p, ast.Constant) and p.value == "__main__"]
    return bool(names and consts) and isinstance(node.test.ops[0], ast.Eq)


def _reads_stdin(node: ast.AST) -> bool:
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and n.id in _STDIN_NAMES:
            return True
        if isinstance(n, ast.Attribute) and n.attr == "stdin":
            return True
        opens = isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "open"
        if opens and n.args and isinstance(n.args[0], ast.Constant) and n.args[0].value == 0:  # type: ignore[attr-defined]
            return True  # open(0): stdin by descriptor
    return False


def _callee(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _is_check(node: ast.stmt) -> bool:
    """A statement that checks something: ``assert``, a bare ``assert*(...)``/``self.assert*(...)`` call,
    or ``if ...: raise AssertionError/Exception(...)`` (the hand-written form of an assert)."""
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        return _callee(node.value.func).lower().startswith("assert")
    if isinstance(node, ast.If) and node.body and isinstance(node.body[0], ast.Raise):
        exc = node.body[0].exc
        exc = exc.func if isinstance(exc, ast.Call) else exc
        return isinstance(exc, ast.Name) and exc.id in ("AssertionError", "Exception")
    return False


def _count_checks(body: list[ast.stmt]) -> list[ast.stmt]:
    """Prefix every check statement with ``__sca_check__()`` so the harness knows checks really ran.
    Walks statement lists only (expressions cannot hold statements): cheap on every program."""
    out: list[ast.stmt] = []
    for stmt in body:
        for name in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, name, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                setattr(stmt, name, _count_checks(inner))
        for part in getattr(stmt, "handlers", None) or getattr(stmt, "cases", None) or ():
            part.body = _count_checks(part.body)
        if _is_check(stmt):
            at = {"lineno": stmt.lineno, "col_offset": stmt.col_offset}
            at |= {"end_lineno": stmt.lineno, "end_col_offset": stmt.col_offset}
            out.append(ast.Expr(ast.Call(ast.Name(CHECK, ast.Load(), **at), [], [], **at), **at))
        out.append(stmt)
    return out


def _final_span(body: list[ast.stmt]) -> tuple[int, int]:
    if not body:
        return (0, 0)
    last = body[-1]
    if _is_main_guard(last) and isinstance(last, ast.If) and last.body and not last.orelse:
        last = last.body[-1]
    return (last.lineno, last.end_lineno or last.lineno)


def prepare(source: str) -> Prepared:
    """Parse, leave out stdin-reading main guards, count checks. Raises SyntaxError like ``compile``."""
    tree = ast.parse(source, "<candidate>")
    skipped = False
    body: list[ast.stmt] = []
    for node in tree.body:
        if _is_main_guard(node) and _reads_stdin(node):
            skipped = True  # an interactive driver: stdin is empty in the sandbox (docs/sandbox.md)
            continue
        body.append(node)
    tree.body = _count_checks(body)
    uncalled = tuple(
        n.name
        for n in body
        if isinstance(n, ast.FunctionDef)
        and n.name.startswith("test")
        and len(re.findall(rf"\b{n.name}\b", source)) == 1  # its name appears nowhere but in its def
    )
    return Prepared(tree, uncalled, _final_span(body), skipped)


class _Stub(ast.NodeTransformer):
    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        node.body = [ast.copy_location(ast.Return(ast.Constant(None)), node.body[0])]
        return node

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AsyncFunctionDef:
        node.body = [ast.copy_location(ast.Return(ast.Constant(None)), node.body[0])]
        return node


def stub_solution(solution: str) -> str | None:
    """The solution with every top-level function and every method of a top-level class returning None
    (decorators, classes, imports and constants kept); None when the solution does not parse."""
    try:
        tree = ast.parse(solution)
    except (SyntaxError, ValueError):
        return None
    stub = _Stub()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            stub.visit(node)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    stub.visit(item)
    return ast.unparse(ast.fix_missing_locations(tree))
