"""Step ``mined_seeds``: stream the source and keep the functions that pass the per-module filters.

Sources: the standard library of the running interpreter (default, no network), local directories, or a
Hugging Face dataset with a code column, streamed (``hf_config``/``hf_data_dir`` pick a subset, e.g. The
Stack's ``data/python``). The source is cut into *units*: a file, or one data file of the dataset (one
``IterableDataset`` shard). Units are dealt to the step's shards (SLURM array tasks) and, inside a shard,
to worker processes; each unit's candidates are committed to the shard's journal as soon as the unit is
done, so memory holds one unit per worker and a re-run resumes per unit: a unit cut by a crash is redone
whole, a finished one never. The global filters (exact and near duplicates, decontamination, type check,
``limit``) run in the ``seeds`` step over every shard's candidates.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from sca.config import SeedsConfig
from sca.generate.seed_filters import Candidate, Filters, filters_of, mine_module
from sca.io import Journal, shard_of
from sca.params import runtime_field
from sca.progress import bar, print_counters
from sca.records import Seed, make_id
from sca.step import StepContext

SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "test_support"}
FILES_PER_COMMIT = 64  # file sources: small units, committed in groups so the journal stays small


@dataclass(frozen=True)
class MiningParams:
    """The part of ``generate.seeds`` that decides what is mined: changing a later filter does not re-mine."""

    source: str
    paths: list[str]
    hf_dataset: str
    hf_config: str | None
    hf_data_dir: str | None
    hf_split: str
    hf_column: str
    max_lines: int
    banned_words: list[str]
    banned_imports: list[str]
    workers: int = runtime_field()


def mining_params(seeds: SeedsConfig) -> MiningParams:
    return MiningParams(**{f.name: getattr(seeds, f.name) for f in dataclasses.fields(MiningParams)})


@dataclass(frozen=True)
class HFUnit:
    """One data file of a streamed dataset: shard ``index`` of ``count`` of its ``IterableDataset``."""

    dataset: str
    config: str | None
    data_dir: str | None
    split: str
    column: str
    index: int
    count: int

    @property
    def id(self) -> str:
        subset = f"[{self.config}]" if self.config else ""
        where = f"/{self.data_dir.strip('/')}" if self.data_dir else ""
        return f"{self.dataset}{subset}{where}:{self.split}:{self.index}-of-{self.count}"


# ---------------------------------------------------------------- sources


def stdlib_files() -> list[tuple[str, Path]]:
    import sysconfig

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


def _load(unit: HFUnit) -> Any:
    """The streamed dataset (needs the network or a local HF cache, or a local folder of data files)."""
    import datasets

    return datasets.load_dataset(unit.dataset, name=unit.config, data_dir=unit.data_dir, split=unit.split,
                                 streaming=True)  # fmt: skip


def hf_units(cfg: MiningParams) -> list[HFUnit]:
    """One unit per data file: resolving the file list reads no rows."""
    first = HFUnit(cfg.hf_dataset, cfg.hf_config, cfg.hf_data_dir, cfg.hf_split, cfg.hf_column, index=0, count=1)
    count = int(_load(first).num_shards)
    return [dataclasses.replace(first, index=i, count=count) for i in range(count)]


def hf_modules(unit: HFUnit) -> Iterator[tuple[str, Any]]:
    for row, record in enumerate(_load(unit).shard(num_shards=unit.count, index=unit.index, contiguous=True)):
        if unit.column not in record:
            raise KeyError(
                f"generate.seeds.hf_column={unit.column!r} is not a column of {unit.id} (has {sorted(record)})"
            )
        yield f"{unit.id}:{row}", record[unit.column]


# ---------------------------------------------------------------- work (runs in worker processes)

Work = tuple[list[str], list[Candidate], Counter[str]]  # unit ids done, their candidates, their counters


def _mine_files(items: Sequence[tuple[str, Path]], filters: Filters) -> Work:
    found: list[Candidate] = []
    counts: Counter[str] = Counter()
    for source, path in items:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            counts["modules_unreadable"] += 1
            continue
        cands, c = mine_module(source, text, filters)
        found.extend(cands)
        counts.update(c)
    return [source for source, _ in items], found, counts


def _mine_hf(unit: HFUnit, filters: Filters) -> Work:
    found: list[Candidate] = []
    counts: Counter[str] = Counter()
    for source, text in hf_modules(unit):
        if not isinstance(text, str):
            counts["modules_unreadable"] += 1
            continue
        cands, c = mine_module(source, text, filters)
        found.extend(cands)
        counts.update(c)
    return [unit.id], found, counts


def work_items(cfg: MiningParams, shard: int, num_shards: int, done: set[str]) -> tuple[list[Any], int]:
    """This shard's pending work items (file groups or data files) and its number of units in all."""
    if cfg.source == "hf":
        units = [u for u in hf_units(cfg) if u.index % num_shards == shard]
        return [u for u in units if u.id not in done], len(units)
    files = stdlib_files() if cfg.source == "stdlib" else dir_files(cfg.paths)
    mine = [f for f in files if shard_of(make_id(f[0]), num_shards) == shard]
    todo = [f for f in mine if f[0] not in done]
    return [todo[i : i + FILES_PER_COMMIT] for i in range(0, len(todo), FILES_PER_COMMIT)], len(mine)


def mine_into(journal: Journal, cfg: MiningParams, shard: int, num_shards: int) -> None:
    """Mine this shard's pending units into ``journal``, one commit per work item, in completion order."""
    filters = filters_of(cfg)
    items, total = work_items(cfg, shard, num_shards, journal.done)
    work = partial(_mine_hf if cfg.source == "hf" else _mine_files, filters=filters)
    workers = max(1, min(workers_of(cfg.workers), len(items)))
    with bar(total, f"seeds: mine (shard {shard + 1}/{num_shards})", unit="unit", initial=total - _units(items)) as pb:
        results: Iterable[Work]
        pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
        # Unordered: a slow data file does not hold finished ones in memory; the merge sorts by id anyway.
        results = pool.imap_unordered(work, items) if pool is not None else map(work, items)
        try:
            for ids, cands, counts in results:
                seeds = [
                    Seed(id=make_id(c.code), parent_id="", code=c.code, name=c.name, source=c.source) for c in cands
                ]
                journal.commit(ids, seeds, {**counts, "candidates": len(seeds)})
                pb.update(len(ids))
            if pool is not None:
                pool.close()
        finally:
            if pool is not None:  # after close(): waits for the workers; after an error: stops them
                pool.terminate()
                pool.join()


def _units(items: Sequence[Any]) -> int:
    return sum(len(i) if isinstance(i, list) else 1 for i in items)


def workers_of(n: int) -> int:
    """``n`` processes, 0 = one per core this process may use (a SLURM task's allocation, not the node's)."""
    return n if n > 0 else len(os.sched_getaffinity(0))


def run(ctx: StepContext[MiningParams]) -> dict[str, float]:
    journal = ctx.journal()
    try:
        mine_into(journal, ctx.params, ctx.shard, ctx.num_shards)
    finally:
        journal.close()
    print_counters(f"mined seeds, shard {ctx.shard + 1}/{ctx.num_shards}", journal.counters)
    return {"candidates": 0, **journal.counters}
