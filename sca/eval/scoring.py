"""EvalPlus scoring through evalplus's own library functions, without ``evalplus.evaluate``'s pitfalls.

Why the library and not ``evalplus.evaluate`` (nor our sandbox): the verdicts must be EvalPlus's, so the
comparison code is evalplus's own ``unsafe_execute`` (its per-input time limits, float tolerance, special
oracles, memory cap and ``reliability_guard``), and ground truth is its ``trusted_exec`` of the canonical
solution. What we replace is the orchestration around them, which in 0.3.1 has these problems:

* ``evaluate()`` sleeps 20 s in a non-daemon watchdog thread and reads/writes ``<samples>_eval_results.json``
  (silently reusing an old file, or calling ``input()`` to ask) -> we never call it.
* ``EVALPLUS_TIMEOUT_PER_TASK`` is compared as a string and hangs the run -> we compute the per-task
  timeout ourselves with evalplus's formula and its default 60 s cap, and remove the variable in workers.
* Ground truth is cached under a global ``~/.cache/evalplus`` keyed by the md5 of one file -> we cache per
  task under our cache dir, keyed by the task's content and the evalplus version.
* HumanEval/32 (``find_zero``): its special oracle ``continue``s past the progress counter, so 0.3.1 fails
  every program, even the canonical one. We read the child's own status instead (with fast checks, it is
  "success" only if every input passed), which is what later evalplus versions compute.

``Grading.float_tolerance=False`` grades as evalplus did before 0.3 on numpy 1.x, which is how most
published EvalPlus figures of 2024 were made (SelfCodeAlign's included, evalplus pinned at 25e195e).
Its tolerance check was ``np.testing.assert_allclose``; numpy 1.x imports ``np.testing`` lazily, and that
import calls ``subprocess.run``, which ``reliability_guard`` had just disabled. So the check always raised,
and an output had to equal the canonical one bit for bit. We reproduce that by giving evalplus's checker,
in the forked child only, a numpy whose ``allclose`` never agrees: the program under test is untouched.

Each program runs in a fresh forked process (as evalplus does) started from a pool of spawned workers,
so the parent's threads and model memory are never forked.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import time
import types
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from sca.benchmarks import Benchmark, Problem
from sca.progress import bar

PASS, FAIL, TIMEOUT = "pass", "fail", "timeout"
# evalplus.eval's child status codes (success, failed, timeout, unknown).
_SUCCESS, _FAILED, _UNKNOWN = 0, 1, 3
PER_TASK_CAP_S = 60.0  # evalplus's default EVALPLUS_TIMEOUT_PER_TASK


@dataclass(frozen=True)
class Grading:
    """EvalPlus's knobs: per-input limit = max(min_time_limit, gt_time_limit_factor * canonical time)."""

    min_time_limit: float = 1.0
    gt_time_limit_factor: float = 4.0
    max_memory_gb: float = 4.0
    """Address-space cap per program (evalplus's EVALPLUS_MAX_MEMORY_BYTES); <= 0 disables it."""
    float_tolerance: bool = True
    """False: floats must equal the canonical outputs exactly, as graded before evalplus 0.3 (module docstring)."""

    def memory_bytes(self) -> int:
        return -1 if self.max_memory_gb <= 0 else int(self.max_memory_gb * (1 << 30))


@dataclass(frozen=True)
class Verdict:
    base: str  # pass | fail | timeout
    plus: str  # "" when only base tests ran
    base_fail_index: int = -1  # the input that failed (fast check stops there); -1 if none
    plus_fail_index: int = -1

    @property
    def passed_plus(self) -> bool:
        """EvalPlus's plus verdict: base and extra tests both pass."""
        return self.base == PASS and self.plus == PASS


def _init_worker(memory_bytes: int) -> None:
    os.environ["EVALPLUS_MAX_MEMORY_BYTES"] = str(memory_bytes)
    os.environ.pop("EVALPLUS_TIMEOUT_PER_TASK", None)


class _NumpyWithoutTolerance(types.ModuleType):
    """numpy as evalplus's checker saw it before 0.3 on numpy 1.x: every tolerance check fails."""

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    @staticmethod
    def allclose(*_: Any, **__: Any) -> bool:
        return False


def _unsafe_execute(float_tolerance: bool, *args: Any) -> None:
    """evalplus's checker, in the forked child that tests one program."""
    import evalplus.eval as checker

    if not float_tolerance:
        checker.np = _NumpyWithoutTolerance("numpy")  # type: ignore[attr-defined]
    checker.unsafe_execute(*args)


def _expected(dataset: str, problem: Problem) -> dict[str, Any]:
    """Ground truth of one task: the canonical solution's outputs and run times (evalplus's get_groundtruth)."""
    from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS
    from evalplus.gen.util import trusted_exec

    code = problem["prompt"] + problem["canonical_solution"]
    not_none = dataset == "mbpp" and problem["entry_point"] in MBPP_OUTPUT_NOT_NONE_TASKS
    oracle: dict[str, Any] = {}
    for kind in ("base", "plus"):
        oracle[kind], oracle[f"{kind}_time"] = trusted_exec(
            code, problem[f"{kind}_input"], problem["entry_point"], record_time=True, output_not_none=not_none
        )
    return oracle


def _run_inputs(
    dataset: str, code: str, problem: Problem, kind: str, expected: Mapping[str, Any], grading: Grading
) -> tuple[str, int]:
    """One program against one input set in a fresh process: (status, index of the failing input or -1)."""
    inputs = problem[f"{kind}_input"]
    time_limits = [max(grading.min_time_limit, grading.gt_time_limit_factor * t) for t in expected[f"{kind}_time"]]
    timeout = min(PER_TASK_CAP_S, sum(time_limits)) + 1
    # Fork explicitly: workers are spawned, so their default would be spawn, ~0.6 s per program instead of ~30 ms.
    ctx = multiprocessing.get_context("fork")
    progress = ctx.Value("i", 0)
    stat = ctx.Value("i", _UNKNOWN)
    details = ctx.Array("b", [False] * len(inputs))
    args = (dataset, problem["entry_point"], code, inputs, expected[kind], time_limits, problem["atol"], True)
    p = ctx.Process(target=_unsafe_execute, args=(grading.float_tolerance, *args, stat, details, progress))
    p.start()
    p.join(timeout=timeout + 1)
    for stop in (p.terminate, p.kill):
        if p.is_alive():
            stop()
            time.sleep(0.1)
    p.join(timeout=1)
    done = progress.value
    if stat.value == _UNKNOWN:
        return TIMEOUT, done - 1 if done else -1
    if stat.value == _FAILED:
        return FAIL, max(done - 1, 0)
    if dataset == "humaneval" and problem["entry_point"] == "find_zero":
        return PASS, -1  # see the module docstring: its oracle skips the progress counter
    if done != len(inputs) or not all(details[:done]):
        return FAIL, done
    return PASS, -1


def _check(
    dataset: str, problem: Problem, solution: str, expected: Mapping[str, Any], grading: Grading, base_only: bool
) -> Verdict:
    base, base_i = _run_inputs(dataset, solution, problem, "base", expected, grading)
    if base_only:
        return Verdict(base, "", base_i)
    # Like evalplus, run the extra tests even when the base ones fail: the raw plus status is reported.
    plus, plus_i = _run_inputs(dataset, solution, problem, "plus", expected, grading)
    return Verdict(base, plus, base_i, plus_i)


class Scorer:
    """A pool of workers that computes (and caches) ground truth and checks programs for one dataset."""

    def __init__(self, benchmark: Benchmark, cache: Path, grading: Grading = Grading(), workers: int = 0) -> None:
        self.dataset = benchmark.dataset
        self.problems = benchmark.problems
        self.digests = benchmark.digests
        self.grading = grading
        self.cache_dir = cache / "eval" / "groundtruth" / f"evalplus-{metadata.version('evalplus')}" / self.dataset
        self.workers = workers or max(1, (os.cpu_count() or 2))
        self._pool: ProcessPoolExecutor | None = None
        self._expected: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> Scorer:
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.grading.memory_bytes(),),
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    @property
    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            raise RuntimeError("Scorer is used outside its `with` block")
        return self._pool

    def _cache_file(self, task_id: str) -> Path:
        return self.cache_dir / f"{self.digests[task_id]}.pkl"

    def ground_truth(self, task_ids: Iterable[str]) -> None:
        """Load or compute the expected outputs of these tasks (each cached once per task content)."""
        todo = []
        for task_id in dict.fromkeys(task_ids):
            if task_id in self._expected:
                continue
            path = self._cache_file(task_id)
            if path.exists():
                with open(path, "rb") as f:
                    self._expected[task_id] = pickle.load(f)
            else:
                todo.append(task_id)
        if not todo:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        futures = {self.pool.submit(_expected, self.dataset, self.problems[t]): t for t in todo}
        with bar(len(todo), f"{self.dataset} ground truth", unit="task") as progress:
            for future in _as_done(futures):
                task_id = futures[future]
                self._expected[task_id] = future.result()
                tmp = self._cache_file(task_id).with_suffix(f".{os.getpid()}.tmp")
                with open(tmp, "wb") as f:
                    pickle.dump(self._expected[task_id], f)
                os.replace(tmp, self._cache_file(task_id))
                progress.update()

    def score(self, items: Sequence[tuple[str, str]], base_only: bool = False, desc: str = "") -> list[Verdict]:
        """Verdicts of ``(task_id, solution)`` pairs, in order."""
        unknown = sorted({t for t, _ in items} - set(self.problems))
        if unknown:
            raise KeyError(f"{self.dataset}: samples name tasks not in the problems file: {unknown[:5]}")
        self.ground_truth(t for t, _ in items)
        futures: dict[Future[Verdict], int] = {
            self.pool.submit(
                _check, self.dataset, self.problems[t], code, self._expected[t], self.grading, base_only
            ): i
            for i, (t, code) in enumerate(items)
        }
        verdicts: list[Verdict | None] = [None] * len(items)
        with bar(len(items), desc or f"{self.dataset} scoring", unit="sample") as progress:
            for future in _as_done(futures):
                verdicts[futures[future]] = future.result()
                progress.update()
        return [v for v in verdicts if v is not None]


def _as_done(futures: Mapping[Future[Any], Any]) -> Iterable[Future[Any]]:
    from concurrent.futures import as_completed

    return as_completed(futures)


def pass_at_k(correct: Mapping[str, Sequence[bool]], ks: Sequence[int] = (1, 10, 100)) -> dict[str, float]:
    """evalplus's unbiased pass@k, averaged over tasks, for every k that every task has samples for."""
    from evalplus.eval import estimate_pass_at_k

    if not correct:
        return {}
    total = np.array([len(v) for v in correct.values()])
    passed = np.array([sum(v) for v in correct.values()])
    return {f"pass@{k}": float(estimate_pass_at_k(total, passed, k).mean()) for k in ks if total.min() >= k}


def summarize(task_verdicts: Mapping[str, Sequence[Verdict]], base_only: bool = False) -> dict[str, float]:
    """``{"pass@1_base": .., "pass@1_plus": .., "n_tasks": ..}`` (plus pass@10/100 when there are enough samples)."""
    out: dict[str, float] = {"n_tasks": len(task_verdicts)}
    for suffix, ok in (("base", lambda v: v.base == PASS), ("plus", lambda v: v.passed_plus)):
        if suffix == "plus" and base_only:
            continue
        scores = pass_at_k({t: [ok(v) for v in vs] for t, vs in task_verdicts.items()})
        out.update({f"{k}_{suffix}": v for k, v in scores.items()})
    return out
