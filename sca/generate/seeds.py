"""Step ``seeds``: mine top-level Python functions with docstrings and filter them (METHOD.md section 1).

Sources: the standard library of the running interpreter (default, no network), local directories, or
a Hugging Face dataset with a code column (streamed). Every function found goes through, in order:

1. docstring (any quote style; the reference only saw ``\"\"\"``), 2. at least one argument (from the AST,
   so ``def f() -> T:`` counts as no-argument), 3. a ``return`` with a value (``return None`` is not one;
   nested functions don't count), 4. at most ``max_lines`` lines, 5. no relative imports, 6. no use of
   module-level names other than imports (a seed must stand alone), 7. imports attached: the module's
   import statements whose bound names the function uses, 8. banned words, matched as whole words of
   tokens (identifiers split at ``_`` and camelCase, comments, strings), so ``bug`` does not hit
   ``debug``, 9. banned imports, matched on the imported module's top-level package, so ``os`` does not
   hit ``ossaudiodev``, 10. the assembled seed parses, 11. exact duplicates, 12. decontamination
   (exact + word n-gram, :mod:`sca.generate.decontam`), 13. basedpyright reports no error, 14. MinHash
   near-duplicates, 15. ``limit`` (a seeded sample).

Steps 1-12 are fast and recomputed on resume; the type check runs in batches, each committed to a
journal in ``<out>/typecheck/``, so a crash loses at most the batches in flight. If basedpyright fails
on a batch (crash, timeout, unreadable output) the batch is split in halves and retried; a single file
that still fails is dropped under ``dropped_typecheck_crash`` and logged. The final seeds are written
in one commit after the global steps (near-dedup, limit).
"""

from __future__ import annotations

import ast
import io
import json
import logging
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import symtable
import sys
import sysconfig
import tempfile
import tokenize
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from sca.generate.dedup import near_dedup
from sca.io import Journal
from sca.progress import bar, print_counters
from sca.records import Seed, make_id
from sca.step import StepContext

log = logging.getLogger(__name__)

SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "test_support"}
TYPECHECK_TIMEOUT_S = 600
SEED_NGRAM = 5  # word shingles for seed near-dedup


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


@dataclass(frozen=True, slots=True)
class Checked:
    """One type-check verdict, journaled so a re-run does not type-check the seed again."""

    id: str
    ok: bool
    errors: list[str]
    crashed: bool = False  # basedpyright itself failed on this file alone


# ---------------------------------------------------------------- sources


def stdlib_files() -> list[tuple[str, Path]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return [(f"stdlib:{p.relative_to(root)}", p) for p in _py_files(root)]


def _py_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        files.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py") and not f.startswith("test_"))
    return files


def dir_files(paths: Sequence[str]) -> list[tuple[str, Path]]:
    if not paths:
        raise ValueError("generate.seeds.source=dir needs generate.seeds.paths (a list of directories or files)")
    out = []
    for p in map(Path, paths):
        if p.is_file():
            out.append((str(p), p))
        elif p.is_dir():
            out.extend((str(f), f) for f in _py_files(p))
        else:
            raise FileNotFoundError(f"generate.seeds.paths: {p} does not exist")
    return out


def hf_modules(dataset: str, split: str, column: str) -> Iterator[tuple[str, str]]:
    """Stream a dataset with a code column (needs the network or a local HF cache)."""
    import datasets

    ds = datasets.load_dataset(dataset, split=split, streaming=True)
    for i, row in enumerate(ds):
        if column not in row:
            raise KeyError(f"generate.seeds.hf_column={column!r} is not a column of {dataset} (has {sorted(row)})")
        yield f"{dataset}:{split}:{i}", row[column]


# ---------------------------------------------------------------- per-module mining (runs in workers)


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


def _mine_file(item: tuple[str, Path], filters: Filters) -> tuple[list[Candidate], Counter[str]]:
    source, path = item
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return [], Counter({"modules_unreadable": 1})
    return mine_module(source, text, filters)


def _mine_text(item: tuple[str, str], filters: Filters) -> tuple[list[Candidate], Counter[str]]:
    return mine_module(item[0], item[1], filters)


def mine(
    items: Iterable[Any], filters: Filters, workers: int, total: int | None, from_files: bool
) -> tuple[list[Candidate], Counter[str]]:
    counts: Counter[str] = Counter()
    found: list[Candidate] = []
    work = partial(_mine_file if from_files else _mine_text, filters=filters)
    with bar(total, "seeds: mine", unit="file") as pbar:
        results: Iterable[tuple[list[Candidate], Counter[str]]]
        if workers > 1:
            pool = multiprocessing.get_context("spawn").Pool(workers)
            results = pool.imap(work, items, chunksize=16)
        else:
            pool = None
            results = map(work, items)
        try:
            for cands, c in results:  # imap keeps input order: the result does not depend on workers
                found.extend(cands)
                counts.update(c)
                pbar.update(1)
        finally:
            if pool is not None:
                pool.close()
                pool.join()
    return found, counts


# ---------------------------------------------------------------- type check


def basedpyright_bin() -> str:
    """The basedpyright CLI installed next to this interpreter (the venv), else on PATH."""
    here = Path(sys.executable).parent / "basedpyright"
    found = str(here) if here.exists() else shutil.which("basedpyright")
    if not found:
        raise FileNotFoundError("basedpyright not found next to the interpreter or on PATH: pip install basedpyright")
    return found


def _pyright_config() -> dict[str, Any]:
    return {
        "typeCheckingMode": "standard",
        "pythonVersion": f"{sys.version_info.major}.{sys.version_info.minor}",
        "pythonPath": sys.executable,
        "reportMissingModuleSource": "none",
    }


def typecheck_batch(codes: Mapping[str, str], timeout_s: float = TYPECHECK_TIMEOUT_S) -> dict[str, list[str]]:
    """Error messages per seed id (empty list = clean). Raises RuntimeError when basedpyright fails."""
    with tempfile.TemporaryDirectory(prefix="sca-pyright-") as tmp:
        root = Path(tmp)
        (root / "pyrightconfig.json").write_text(json.dumps(_pyright_config()))
        files = {}
        for seed_id, code in codes.items():
            path = root / f"seed_{seed_id}.py"
            path.write_text(code, encoding="utf-8")
            files[str(path.resolve())] = seed_id
        cmd = [basedpyright_bin(), "--outputjson", "--project", str(root / "pyrightconfig.json"), *sorted(files)]
        try:
            proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"basedpyright timed out after {timeout_s}s") from e
        # Exit 0: no errors, 1: errors found; anything else is a failure of the tool itself.
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"basedpyright exited {proc.returncode}: {proc.stderr[-2000:] or proc.stdout[-2000:]}")
        try:
            report = json.loads(proc.stdout)
        except json.JSONDecodeError as e:
            raise RuntimeError(f"basedpyright printed no JSON report: {proc.stdout[-500:]} {proc.stderr[-500:]}") from e
    errors: dict[str, list[str]] = {sid: [] for sid in codes}
    for diag in report.get("generalDiagnostics", []):
        if diag.get("severity") == "error":
            found = files.get(str(Path(diag["file"]).resolve()))
            if found is None:
                raise RuntimeError(f"basedpyright reported on an unknown file {diag['file']}")
            errors[found].append(f"{diag.get('rule', '')}: {diag['message']}"[:300])
    return errors


def typecheck_resilient(codes: Mapping[str, str]) -> tuple[dict[str, list[str]], list[str]]:
    """Like :func:`typecheck_batch`, splitting a failing batch; returns (errors, ids that crashed alone)."""
    try:
        return typecheck_batch(codes), []
    except RuntimeError as e:
        if len(codes) == 1:
            log.warning("basedpyright fails on seed %s alone, dropping it: %s", next(iter(codes)), e)
            return {}, list(codes)
        log.warning("basedpyright failed on a batch of %d; retrying in halves: %s", len(codes), e)
    items = sorted(codes.items())
    half = len(items) // 2
    e1, c1 = typecheck_resilient(dict(items[:half]))
    e2, c2 = typecheck_resilient(dict(items[half:]))
    return {**e1, **e2}, c1 + c2


def run_typecheck(out: Path, codes: Mapping[str, str], batch_size: int, workers: int) -> dict[str, str]:
    """Type-check every seed, resuming from the journal in ``out``; id -> "" (clean) or the drop reason."""
    out.mkdir(parents=True, exist_ok=True)
    basedpyright_bin()  # fail before any work if the tool is missing
    verdicts: dict[str, str] = {}
    with Journal(out) as journal:
        for path in sorted(out.glob("records-*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                verdicts[entry["id"]] = _reason(seeds_checked(entry))
        todo = sorted(sid for sid in codes if sid not in journal.done)
        batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
        # Batches run `workers` at a time (basedpyright is one Node process each) and commit in order.
        pool = ThreadPoolExecutor(max(1, workers))
        try:
            with bar(len(codes), "seeds: typecheck", unit="fn", initial=len(codes) - len(todo)) as pbar:
                futures = [pool.submit(typecheck_resilient, {sid: codes[sid] for sid in b}) for b in batches]
                for b, fut in zip(batches, futures, strict=True):
                    errors, crashed = fut.result()
                    checked = [
                        Checked(
                            id=s,
                            ok=not errors.get(s) and s not in crashed,
                            errors=errors.get(s, []),
                            crashed=s in crashed,
                        )
                        for s in b
                    ]
                    journal.commit(b, checked)
                    verdicts.update((c.id, _reason(c)) for c in checked)
                    pbar.update(len(b))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return verdicts


def seeds_checked(entry: Mapping[str, Any]) -> Checked:
    return Checked(**entry)


def _reason(c: Checked) -> str:
    return "" if c.ok else "typecheck_crash" if c.crashed else "typecheck"


# ---------------------------------------------------------------- the step


def _filters(cfg: Mapping[str, Any]) -> Filters:
    if cfg["max_lines"] < 1:
        raise ValueError(f"generate.seeds.max_lines={cfg['max_lines']} must be >= 1")
    return Filters(
        max_lines=int(cfg["max_lines"]),
        banned_words=frozenset(w.lower() for w in cfg["banned_words"]),
        banned_imports=frozenset(cfg["banned_imports"]),
    )


def _workers(n: int) -> int:
    return n if n > 0 else (os.cpu_count() or 1)


def collect(cfg: Mapping[str, Any], workers: int) -> tuple[list[Candidate], Counter[str]]:
    filters = _filters(cfg)
    if cfg["source"] == "hf":
        return mine(hf_modules(cfg["hf_dataset"], cfg["hf_split"], cfg["hf_column"]), filters, workers, None, False)
    files = stdlib_files() if cfg["source"] == "stdlib" else dir_files(cfg["paths"])
    return mine(files, filters, workers, len(files), True)


def run(ctx: StepContext) -> dict[str, float]:
    if ctx.num_shards != 1:
        raise ValueError("the seeds step is global (dedup, sampling) and runs as one shard; set num_shards=1 for it")
    cfg, seed = ctx.params["seeds"], int(ctx.params["seed"])
    journal = ctx.journal()
    if journal.done:  # the final commit happened: nothing left to do
        journal.close()
        return dict(journal.counters)
    workers = _workers(int(ctx.runtime.get("workers", 0)))
    candidates, counts = collect(cfg, workers)

    unique: dict[str, Candidate] = {}
    for c in candidates:
        unique.setdefault(make_id(c.code), c)
    counts["dropped_duplicate"] += len(candidates) - len(unique)

    if cfg["decontaminate"]:
        from sca.generate.decontam import load_decontaminator

        decon = load_decontaminator(["humaneval", "mbpp"], ctx.runtime, ngram=int(cfg["decontam_ngram"]))
        for sid in sorted(unique):
            if decon.check(unique[sid].code):
                counts["dropped_contaminated"] += 1
                del unique[sid]

    if cfg["typecheck"]:
        ok = run_typecheck(
            ctx.out / "typecheck",
            {sid: c.code for sid, c in unique.items()},
            int(ctx.runtime.get("typecheck_batch_size", 250)),
            workers,
        )
        for sid in sorted(unique):
            if ok[sid]:
                counts[f"dropped_{ok[sid]}"] += 1
                del unique[sid]

    ids = sorted(unique)
    keep = near_dedup([unique[i].code for i in ids], cfg["dedup_threshold"], cfg["dedup_num_perm"], SEED_NGRAM, seed)
    counts["dropped_near_duplicate"] += len(ids) - len(keep)
    ids = [ids[i] for i in keep]

    if cfg["limit"] and len(ids) > cfg["limit"]:
        counts["dropped_limit"] += len(ids) - cfg["limit"]
        ids = sorted(random.Random(f"{seed}:seeds").sample(ids, cfg["limit"]))

    records = [Seed(id=i, parent_id="", code=unique[i].code, name=unique[i].name, source=unique[i].source) for i in ids]
    counts["kept"] = len(records)
    # The sentinel marks the step done even when no seed survived.
    journal.commit([*ids, "_final"], records, counts)
    journal.close()
    print_counters("seeds funnel", journal.counters)
    return dict(journal.counters)
