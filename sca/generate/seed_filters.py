"""Seed filters of one Python module: which top-level functions make stand-alone seeds, and why not.

Every top-level function goes through, in order: 1. docstring (any quote style; the reference only saw
``\"\"\"``), 2. at least one argument (from the AST, so ``def f() -> T:`` counts as no-argument), 3. a
``return`` with a value (``return None`` is not one; nested functions don't count), 4. at most ``max_lines``
lines, 5. no use of names the module defines itself (scope-aware, see :func:`free_names`), 6. imports
attached: the module's import statements whose bound names the function uses, 7. no relative imports,
8. the assembled seed parses, 9. banned words, matched as whole words of tokens (identifiers split at
``_`` and camelCase, comments, strings), so ``bug`` does not hit ``debug``, 10. banned imports, matched on
the imported module's top-level package, so ``os`` does not hit ``ossaudiodev``.
"""

from __future__ import annotations

import ast
import io
import re
import symtable
import tokenize
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Filters:
    max_lines: int
    banned_words: frozenset[str]
    banned_imports: frozenset[str]


@dataclass(frozen=True, slots=True)
class Candidate:
    code: str
    name: str
    source: str


def _bound_imports(tree: ast.Module) -> dict[str, tuple[int, str]]:
    """Name bound by each module-level import -> (order, the import statement that binds only it)."""
    bound: dict[str, tuple[int, str]] = {}
    nodes: list[ast.stmt] = []
    for node in tree.body:
        nodes.append(node)
        if isinstance(node, ast.Try):  # try: import x / except ImportError: x = None
            nodes.extend(node.body)
    for order, node in enumerate(nodes):
        if isinstance(node, ast.Import):
            for a in node.names:
                name = a.asname or a.name.split(".")[0]
                stmt = f"import {a.name}" + (f" as {a.asname}" if a.asname else "")
                bound.setdefault(name, (order, stmt))
        elif isinstance(node, ast.ImportFrom):
            mod = "." * node.level + (node.module or "")
            for a in node.names:
                if a.name == "*":
                    continue
                stmt = f"from {mod} import {a.name}" + (f" as {a.asname}" if a.asname else "")
                bound.setdefault(a.asname or a.name, (order, stmt))
    return bound


def _module_names(tree: ast.Module) -> set[str]:
    """Names a module defines itself (functions, classes, assignments), which a seed cannot carry."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


def _own_nodes(fn: ast.AST) -> Iterator[ast.AST]:
    """Nodes of a function's own body, not those of nested functions, lambdas or classes."""
    stack = list(ast.iter_child_nodes(fn))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            stack.extend(ast.iter_child_nodes(node))


def free_names(function_source: str, name: str) -> set[str]:
    """Names a top-level function takes from its module: free in its body (or in a nested function,
    lambda or comprehension), or read by its decorators, defaults and annotations, which run in the module.

    Parameters, locals, names a nested scope takes from the function, and the function's own name (a
    recursive call: the seed carries the definition) are not. Scopes come from :mod:`symtable`, i.e. from
    the compiler, so ``global``/``nonlocal``, comprehension scopes and class bodies count as Python counts.
    """
    table = symtable.symtable(function_source, "<seed>", "exec")
    used = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    stack = list(table.get_children())
    while stack:
        scope = stack.pop()
        used.update(s.get_name() for s in scope.get_symbols() if s.is_global())
        stack.extend(scope.get_children())
    used.discard(name)
    return used


def returns_value(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(
        isinstance(n, ast.Return)
        and n.value is not None
        and not (isinstance(n.value, ast.Constant) and n.value.value is None)
        for n in _own_nodes(fn)
    )


def has_arguments(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    a = fn.args
    return bool(a.posonlyargs or a.args or a.kwonlyargs or a.vararg or a.kwarg)


_SUBWORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def token_words(code: str) -> set[str]:
    """Lower-cased words of identifiers, comments and strings (``debugLevel`` -> debug, level)."""
    found: set[str] = set()
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type in (tokenize.NAME, tokenize.COMMENT, tokenize.STRING):
            found.update(w.lower() for w in _SUBWORD.findall(tok.string))
    return found


def imported_modules(tree: ast.AST) -> set[str]:
    """Top-level packages imported anywhere in the code (``import os.path`` -> os)."""
    mods: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            mods.add(node.module.split(".")[0])
    return mods


def mine_module(source: str, text: str, filters: Filters) -> tuple[list[Candidate], Counter[str]]:
    """Candidate seeds of one module and the counters of what was dropped and why."""
    counts: Counter[str] = Counter()
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        counts["modules_unparsable"] += 1
        return [], counts
    counts["modules"] += 1
    lines = text.splitlines()
    imports = _bound_imports(tree)
    module_names = _module_names(tree) - set(imports)
    out: list[Candidate] = []
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        counts["found"] += 1
        reason, code = _check(fn, lines, imports, module_names, filters)
        if reason:
            counts[f"dropped_{reason}"] += 1
        else:
            out.append(Candidate(code=code, name=fn.name, source=f"{source}:{fn.lineno}"))
    return out, counts


def _check(
    fn: ast.FunctionDef | ast.AsyncFunctionDef,
    lines: list[str],
    imports: Mapping[str, tuple[int, str]],
    module_names: set[str],
    filters: Filters,
) -> tuple[str, str]:
    """(drop reason, "") or ("", the seed: attached imports + the function's source)."""
    if ast.get_docstring(fn) is None:
        return "no_docstring", ""
    if not has_arguments(fn):
        return "no_arguments", ""
    if not returns_value(fn):
        return "no_return_value", ""
    start = fn.decorator_list[0].lineno if fn.decorator_list else fn.lineno
    assert fn.end_lineno is not None
    if fn.end_lineno - start + 1 > filters.max_lines:
        return "too_long", ""
    body = "\n".join(lines[start - 1 : fn.end_lineno])
    try:
        used = free_names(body, fn.name)
    except SyntaxError:
        return "unparsable", ""
    if used & module_names:
        return "needs_module_names", ""
    needed = sorted(imports[n] for n in used if n in imports)
    header = [stmt for _, stmt in dict.fromkeys(needed)]
    if any(s.startswith("from .") for s in header):
        return "relative_import", ""
    code = ("\n".join(header) + "\n\n\n" if header else "") + body + "\n"
    try:
        tree = ast.parse(code)
        words = token_words(code)
    except (SyntaxError, tokenize.TokenError, IndentationError):
        return "unparsable", ""
    if words & filters.banned_words:
        return "banned_word", ""
    if imported_modules(tree) & filters.banned_imports:
        return "banned_import", ""
    return "", code


class FilterSettings(Protocol):
    """The seed-filter knobs (``SeedsConfig`` and the mining step's params both have them)."""

    @property
    def max_lines(self) -> int: ...
    @property
    def banned_words(self) -> Sequence[str]: ...
    @property
    def banned_imports(self) -> Sequence[str]: ...


def filters_of(cfg: FilterSettings) -> Filters:
    if cfg.max_lines < 1:
        raise ValueError(f"generate.seeds.max_lines={cfg.max_lines} must be >= 1")
    return Filters(
        max_lines=cfg.max_lines,
        banned_words=frozenset(w.lower() for w in cfg.banned_words),
        banned_imports=frozenset(cfg.banned_imports),
    )
