"""The repository stands alone: its code, comments and docs name no document that lives outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Design notes the project was written from; users never get them, so nothing may point at them.
OUTSIDE = re.compile(r"\b(METHOD|SANDBOX|ENVIRONMENT|ARCHITECTURE)\.md\b|\bMETHOD \d|shared/docs")


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / p for p in out.splitlines() if (ROOT / p).is_file()]


def test_no_file_points_to_documents_outside_the_repository() -> None:
    hits = []
    for path in tracked_files():
        if path.suffix not in {".py", ".md", ".yaml", ".yml", ".txt", ".sh", ".toml", ".json", ".sbatch"}:
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line) and path.name != "test_repo.py":
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert hits == [], "point to docs/ inside the repository instead:\n" + "\n".join(hits)


def test_the_check_sees_an_outside_reference() -> None:
    assert OUTSIDE.search("loss on the response only (METHOD.md 6.1)")
    assert OUTSIDE.search("# greedy Yes/No (METHOD 1.3)")
    assert not OUTSIDE.search("see docs/method.md, the seed judge")


def import_graph() -> dict[str, set[str]]:
    """Module -> the sca modules it imports, at any depth in the file (a lazy import is still a dependency).

    Imports under ``if TYPE_CHECKING:`` are for annotations only and never run, so they are left out.
    """
    import ast

    graph: dict[str, set[str]] = {}
    for path in (ROOT / "sca").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        deps: set[str] = set()
        tree = ast.parse(path.read_text())
        typing_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for stmt in node.body
            for inner in ast.walk(stmt)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("sca.")}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sca"):
                deps.add(node.module)
                deps |= {f"{node.module}.{a.name}" for a in node.names}
        graph[name] = deps
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), sorted for a stable message."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    # A package's __init__ re-exporting its own modules is not a cycle between modules.
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


MAX_LINES = 400  # a module a reader holds in their head; past this, it is two things


def test_no_module_is_longer_than_a_reader_can_hold() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in sorted((ROOT / "sca").rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these modules (over {MAX_LINES} lines): {long}"
