"""The step contract: what a step is, what its function sees, and how one shard of it runs.

A step is a function ``run(ctx: StepContext) -> dict[str, float]`` (its counters), named by an import
path so that it can run in this process, in a child process or under torchrun. Its output directory is
``<store>/<name>-<key>`` where the key hashes the step's semantic params and its inputs' keys; runtime
knobs (batch size, workers, parallelism) are not hashed. On disk::

    spec.json        written first: params (every field, and their type), inputs, git SHA, versions
    records.jsonl    outputs (merged from the per-shard journals, sorted by id)
    stats.json       counters, written after the work
    _SUCCESS         written last; its presence is the only definition of "done"

``python -m sca.step <step_dir> [--shard I]`` is the generic child entry: it reads spec.json and runs
the function, so children need no Hydra. A step's params are a frozen dataclass declared next to its
function (:mod:`sca.params`): the key hashes their semantic fields, and the child rebuilds the same
dataclass from spec.json, so a step reads typed fields and never a string key with a fallback. Planning, locking and sealing steps is :mod:`sca.runner`'s work.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

from sca.io import Journal, read_records, write_json
from sca.params import hash_view, rebuild

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

log = logging.getLogger(__name__)
R = TypeVar("R")
P = TypeVar("P")
Where = Literal["inline", "subprocess", "torchrun"]
StepFn = Callable[["StepContext[Any]"], Mapping[str, float]]


@dataclass(frozen=True)
class Step(Generic[P]):
    """One node of the plan. ``params`` is the step function's frozen params dataclass (a plain JSON mapping
    for toy steps in tests); its semantic fields are hashed into the output key."""

    name: str  # "r0/responses": readable, and the directory prefix
    fn: str  # "sca.generate.responses:run"
    params: P
    deps: Mapping[str, Step[Any]] = field(default_factory=dict)
    where: Where = "inline"
    version: int = 1  # bump when fn's output semantics change
    num_shards: int = 1  # runtime: not hashed, outputs do not depend on it

    def __post_init__(self) -> None:
        self.key  # noqa: B018 - computed now: a file the key hashes (a prompt, a chat template) must exist when planned

    @cached_property
    def key(self) -> str:
        payload = {
            "name": self.name,
            "fn": self.fn,
            "version": self.version,
            "params": hash_view(self.params),
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
class StepContext(Generic[P]):
    """What a step function sees: where to write, where its inputs are, its typed params."""

    name: str
    out: Path
    inputs: Mapping[str, Path]
    params: P
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


def import_fn(path: str) -> StepFn:
    module, _, name = path.partition(":")
    fn: StepFn = getattr(importlib.import_module(module), name)
    return fn


def done_marker(out: Path, shard: int) -> Path:
    return out / f"_DONE-{shard:05d}"


def check_unchanged(name: str, params: Any, hashed: Any) -> None:
    """Refuse to run when what the key was made from changed since planning (a prompt file or chat template
    edited while a plan ran): the outputs would sit under a key that does not describe them."""
    now = hash_view(params)
    if now != hashed:
        fields = ", ".join(changed_fields(hashed, now)) or "?"
        raise ValueError(f"{name}: {fields} changed after the plan was built (a file it names was edited?); re-run")


def changed_fields(before: Any, after: Any, prefix: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(set(before) | set(after))
        return [f for k in keys for f in changed_fields(before.get(k), after.get(k), f"{prefix}{k}.")]
    return [] if before == after else [prefix.rstrip(".")]


def run_shard(out: Path, shard: int = 0) -> None:
    """Run one shard of the step described by ``out/spec.json`` in this process."""
    spec = json.loads((out / "spec.json").read_text())
    params = rebuild(spec["params_type"], spec["params"])
    check_unchanged(spec["name"], params, spec["hashed"])
    ctx = StepContext(
        name=spec["name"],
        out=out,
        inputs={k: Path(v) for k, v in spec["inputs"].items()},
        params=params,
        shard=shard,
        num_shards=spec["num_shards"],
    )
    counters = dict(import_fn(spec["fn"])(ctx))
    if int(os.environ.get("RANK", "0")) == 0:
        write_json(done_marker(out, shard), counters)


class Launcher(Protocol):
    def run(self, step: Step, out: Path, shards: Sequence[int]) -> None: ...


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
