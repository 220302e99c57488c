"""Step ``seeds``: the global seed filters over every shard's mined candidates (docs/method.md: seeds).

Mining and the per-function filters run sharded in the ``mined_seeds`` step (:mod:`sca.generate.seed_mining`,
:mod:`sca.generate.seed_filters`). This step then applies, in order: 1. exact duplicates (the same code
mined twice keeps its smallest source name), 2. decontamination (exact + word n-gram,
:mod:`sca.curate.decontam`), 3. basedpyright reports no error, 4. MinHash near-duplicates, 5. ``limit``
(a seeded sample; with the judge on, the judge applies it to the seeds it approves instead). Without a
``mined`` input it mines the source itself first, as one shard, into ``<out>/mined/``.

The type check runs in batches, each committed to a journal in ``<out>/typecheck/``, so a crash loses at
most the batches in flight. If basedpyright fails on a batch (crash, timeout, unreadable output) the batch
is split in halves and retried; a single file that still fails is dropped under ``dropped_typecheck_crash``
and logged. The final seeds are written in one commit after the global steps (near-dedup, limit).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sca.benchmarks import BenchmarkFiles
from sca.config import SeedsConfig
from sca.curate.dedup import near_dedup
from sca.generate.seed_filters import (  # noqa: F401 - re-exported: the seed filters' public names
    Candidate,
    Filters,
    free_names,
    has_arguments,
    imported_modules,
    mine_module,
    returns_value,
    token_words,
)
from sca.generate.seed_mining import dir_files, mine_into, mining_params, stdlib_files, workers_of  # noqa: F401
from sca.io import MERGED, SUCCESS, Journal, iter_records
from sca.progress import bar, print_counters
from sca.records import Seed
from sca.step import StepContext

log = logging.getLogger(__name__)

TYPECHECK_TIMEOUT_S = 600
SEED_NGRAM = 5  # word shingles for seed near-dedup


@dataclass(frozen=True)
class SeedsParams:
    seeds: SeedsConfig
    """With the judge on, ``limit`` is 0 here: the judge applies it to what it approves (the final count)."""
    benchmarks: BenchmarkFiles
    """What seeds are decontaminated against (none when ``seeds.decontaminate`` is off)."""
    seed: int


@dataclass(frozen=True, slots=True)
class Checked:
    """One type-check verdict, journaled so a re-run does not type-check the seed again."""

    id: str
    ok: bool
    errors: list[str]
    crashed: bool = False  # basedpyright itself failed on this file alone


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


def mined(ctx: StepContext[SeedsParams]) -> tuple[Iterator[Seed], Counter[str]]:
    """The mined candidates (duplicates included) and the mining counters this step reports."""
    if "mined" in ctx.inputs:
        step = ctx.inputs["mined"]
        if not (step / SUCCESS).exists():
            raise FileNotFoundError(f"{step} has no {SUCCESS}: mining did not finish; re-run to resume it")
        stats = json.loads((step / "stats.json").read_text())
        # Mining's drop reasons stay in its own step's stats; these carry the funnel's start.
        return iter_records(step / MERGED, Seed), Counter({k: int(stats[k]) for k in ("modules", "found", "candidates")
                                                           if k in stats})  # fmt: skip
    (ctx.out / "mined").mkdir(exist_ok=True)
    with Journal(ctx.out / "mined") as journal:
        mine_into(journal, mining_params(ctx.params.seeds), 0, 1)
    return iter_records(journal.records_path, Seed), Counter(journal.counters)


def run(ctx: StepContext[SeedsParams]) -> dict[str, float]:
    if ctx.num_shards != 1:
        raise ValueError("the seeds step is global (dedup, sampling) and runs as one shard; mined_seeds is sharded")
    cfg, seed = ctx.params.seeds, ctx.params.seed
    journal = ctx.journal()
    if journal.done:  # the final commit happened: nothing left to do
        journal.close()
        return dict(journal.counters)
    found, counts = mined(ctx)

    unique: dict[str, Seed] = {}
    n = 0
    for c in found:
        n += 1
        if c.id not in unique or c.source < unique[c.id].source:  # independent of shard count and order
            unique[c.id] = c
    counts["dropped_duplicate"] += n - len(unique)

    if cfg.decontaminate:
        from sca.curate.decontam import load_decontaminator

        decon = load_decontaminator(ctx.params.benchmarks, ngram=cfg.decontam_ngram)
        for sid in sorted(unique):
            if decon.check(unique[sid].code):
                counts["dropped_contaminated"] += 1
                del unique[sid]

    if cfg.typecheck:
        ok = run_typecheck(
            ctx.out / "typecheck",
            {sid: c.code for sid, c in unique.items()},
            cfg.typecheck_batch_size,
            workers_of(cfg.workers),
        )
        for sid in sorted(unique):
            if ok[sid]:
                counts[f"dropped_{ok[sid]}"] += 1
                del unique[sid]

    ids = sorted(unique)
    keep = near_dedup([unique[i].code for i in ids], cfg.dedup_threshold, cfg.dedup_num_perm, SEED_NGRAM, seed)
    counts["dropped_near_duplicate"] += len(ids) - len(keep)
    ids = [ids[i] for i in keep]

    if cfg.limit and len(ids) > cfg.limit:
        counts["dropped_limit"] += len(ids) - cfg.limit
        ids = sorted(random.Random(f"{seed}:seeds").sample(ids, cfg.limit))

    records = [unique[i] for i in ids]
    counts["kept"] = len(records)
    # The sentinel marks the step done even when no seed survived.
    journal.commit([*ids, "_final"], records, counts)
    journal.close()
    print_counters("seeds funnel", journal.counters)
    return dict(journal.counters)
