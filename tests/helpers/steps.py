"""Step functions for runner tests: count their calls, crash or stall on demand."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sca.params import runtime_field
from sca.records import Seed, make_id
from sca.step import StepContext


@dataclass(frozen=True)
class NumbersParams:
    n: int
    calls_file: str = runtime_field()
    crash_after: int = runtime_field()
    """Raise after this many commits (-1: never)."""
    die_once_shard: int = runtime_field()
    """SIGKILL this shard on its first attempt (-1: none)."""
    sleep: float = runtime_field()
    workers: int = runtime_field()


def numbers_params(
    n: int, calls_file: Path, crash_after: int = -1, die_once_shard: int = -1, sleep: float = 0.0, workers: int = 1
) -> NumbersParams:
    return NumbersParams(n, str(calls_file), crash_after, die_once_shard, sleep, workers)


def numbers(ctx: StepContext[NumbersParams]) -> dict[str, float]:
    """Emit ``params.n`` Seed records in batches; optionally crash or sleep between batches."""
    p = ctx.params
    calls = Path(p.calls_file)
    calls.write_text(calls.read_text() + "x" if calls.exists() else "x")
    journal = ctx.journal()
    marker = Path(p.calls_file + ".died")
    if ctx.shard == p.die_once_shard and not marker.exists():
        marker.write_text("")
        os.kill(os.getpid(), signal.SIGKILL)  # a shard killed from outside (OOM killer, preemption)
    ids = [make_id("input", str(i)) for i in range(p.n)]
    todo = [i for i in ids if i not in journal.done and ctx.mine(i)]
    for committed, start in enumerate(range(0, len(todo), 3), 1):
        batch = todo[start : start + 3]
        if batch:
            records = [
                Seed(id=make_id(b, "out"), parent_id=b, code=f"def f{b}(): return 1", name=f"f{b}", source="test")
                for b in batch
                if int(b, 16) % 5  # drop some: dropped inputs must count as done too
            ]
            journal.commit(
                batch, records, {"in": len(batch), "out": len(records), "dropped_mod5": len(batch) - len(records)}
            )
            if committed == p.crash_after:
                raise RuntimeError("planned crash")
            time.sleep(p.sleep)
    journal.close()
    return dict(journal.counters)


def upper(ctx: StepContext[Any]) -> dict[str, float]:
    """Depends on `numbers`: upper-cases the code of each record."""
    journal = ctx.journal()
    seeds = ctx.read("numbers", Seed)
    journal.commit(
        [s.id for s in seeds],
        [Seed(id=make_id(s.id, "up"), parent_id=s.id, code=s.code.upper(), name=s.name, source="up") for s in seeds],
        {"in": len(seeds)},
    )
    return dict(journal.counters) | {"pid": os.getpid()}


@dataclass(frozen=True)
class NoisyParams:
    fail: bool


def noisy(ctx: StepContext[NoisyParams]) -> dict[str, float]:
    """Logs like a library (vLLM's logger, a warning, raw stdout/stderr, a grandchild process), shows a bar and a
    table like sca does, and fails with a cause when asked to."""
    import logging
    import subprocess
    import sys

    from sca.progress import bar, print_counters

    logging.getLogger("vllm.engine").info("LIBRARY-INFO engine started")
    logging.getLogger("deepspeed").warning("LIBRARY-WARNING zero stage ignored")
    print("LIBRARY-STDOUT banner", flush=True)
    os.write(2, b"LIBRARY-FD2 from C code\n")
    subprocess.run([sys.executable, "-c", "print('LIBRARY-GRANDCHILD INFO hello')"], check=True)
    progress = bar(3, f"{ctx.name} bar", unit="x")
    for _ in range(3):
        progress.update(1)
    progress.close()
    if ctx.params.fail:
        raise ValueError("the model directory /nowhere has no config.json\nsecond line of detail")
    print_counters(f"{ctx.name}: counters", {"in": 3, "out": 3})
    return {"in": 3, "out": 3}
