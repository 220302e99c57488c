"""Score an existing samples file, as ``evalplus.evaluate`` does, for models generated elsewhere.

    python -m sca.eval.score --dataset humaneval --samples samples.jsonl [--data HumanEvalPlus.jsonl.gz]

Samples: JSONL with ``task_id`` and ``solution`` (a full program) or ``completion`` (appended to the
task's prompt), or a folder of ``<task>/<n>.py`` (evalplus's formats, read with its ``load_solutions``).
The programs are scored as they are (no code extraction), like evalplus. Results go to ``--out``
(default ``<samples>_eval_results.json``, evalplus's layout plus ``"scores"``); an existing file there is
replaced, never read, so a result is always from this run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sca.benchmarks import DATASETS, Benchmark, load_benchmark, resolve_path
from sca.config import DEFAULT_CACHE
from sca.eval.scoring import Grading, Scorer, Verdict, summarize
from sca.io import atomic_write_text
from sca.progress import console, table

log = logging.getLogger(__name__)


def read_samples(path: Path, bench: Benchmark) -> list[tuple[str, str]]:
    """``(task_id, program)`` pairs in file order."""
    from evalplus.data.utils import load_solutions

    if not path.exists():
        raise FileNotFoundError(f"samples {path} do not exist")
    out = []
    try:
        for sample in load_solutions(str(path)):
            task_id = sample.get("task_id")
            if task_id not in bench.problems:
                raise ValueError(
                    f"{sample['_identifier']}: task {task_id!r} is not in {bench.path} "
                    f"(wrong --dataset or --data version?)"
                )
            program = (
                sample["solution"] if "solution" in sample else bench.problems[task_id]["prompt"] + sample["completion"]
            )
            out.append((task_id, program))
    except (AssertionError, KeyError, json.JSONDecodeError) as e:
        raise ValueError(
            f"{path}: not an EvalPlus samples file (need task_id and solution or completion): {e!r}"
        ) from e
    return out


def default_out(samples: Path) -> Path:
    if samples.is_dir():
        return samples / "eval_results.json"
    return samples.with_name(samples.name.removesuffix(".jsonl") + "_eval_results.json")


def evaluate(
    dataset: str,
    samples: Path,
    data: str = "",
    out: Path | None = None,
    cache: Path = Path(DEFAULT_CACHE),
    grading: Grading | None = None,
    workers: int = 0,
    base_only: bool = False,
    partial: bool = False,
    version: str = "",
) -> dict[str, Any]:
    """Score ``samples`` and write evalplus-style results; returns them."""
    cache = cache.expanduser()
    bench = load_benchmark(dataset, resolve_path(dataset, data, cache, version))
    items = read_samples(samples, bench)
    missing = [t for t in bench.problems if t not in {t for t, _ in items}]
    if missing and not partial:
        raise ValueError(
            f"{samples} has no sample for {len(missing)} of {len(bench.problems)} tasks of {bench.path} "
            f"(first: {missing[:3]}); pass --partial to score only the tasks it covers"
        )
    with Scorer(bench, cache, grading or Grading(), workers) as scorer:
        verdicts = scorer.score(items, base_only=base_only)
    results = results_json(dataset, bench, items, verdicts, base_only)
    target = out or default_out(samples)
    if target.exists():
        log.info("replacing %s", target)
    atomic_write_text(target, json.dumps(results, default=repr) + "\n")
    return results


def results_json(
    dataset: str, bench: Benchmark, items: Sequence[tuple[str, str]], verdicts: Sequence[Verdict], base_only: bool
) -> dict[str, Any]:
    """evalplus.evaluate's results layout (plus ``scores``; failing inputs as evalplus reports them)."""
    from evalplus.data.mbpp import mbpp_serialize_inputs

    per_task: dict[str, list[Verdict]] = defaultdict(list)
    evals: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (task_id, program), v in zip(items, verdicts, strict=True):
        per_task[task_id].append(v)
        problem = bench.problems[task_id]
        fails = {}
        for kind, index in (("base", v.base_fail_index), ("plus", v.plus_fail_index)):
            inputs = problem[f"{kind}_input"]
            failed = [inputs[index]] if 0 <= index < len(inputs) else []
            fails[kind] = mbpp_serialize_inputs(task_id, failed) if dataset == "mbpp" else failed
        evals[task_id].append(
            {
                "task_id": task_id,
                "solution": program,
                "base_status": v.base,
                "plus_status": v.plus or None,
                "base_fail_tests": fails["base"],
                "plus_fail_tests": fails["plus"],
            }
        )
    return {
        "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "data": str(bench.path),
        "hash": bench.data_hash,
        "eval": dict(evals),
        "scores": summarize(per_task, base_only),
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--samples", required=True, type=Path, help="samples .jsonl or a folder of <task>/<n>.py")
    p.add_argument(
        "--data",
        default="",
        help="problems file (.jsonl or .jsonl.gz); default: $HUMANEVAL_OVERRIDE_PATH / $MBPP_OVERRIDE_PATH as "
        "evalplus reads them, else a release, downloaded",
    )
    p.add_argument("--version", default="", help="the release to download without --data (default: evalplus 0.3.1's)")
    p.add_argument("--out", type=Path, default=None, help="results file (default <samples>_eval_results.json)")
    p.add_argument("--cache", type=Path, default=Path(DEFAULT_CACHE), help="ground truth and downloads")
    p.add_argument("--workers", type=int, default=0, help="test processes; 0 = one per core")
    p.add_argument("--base-only", action="store_true", help="only the original tests")
    p.add_argument("--partial", action="store_true", help="allow samples that cover only some tasks")
    p.add_argument("--min-time-limit", type=float, default=1.0)
    p.add_argument("--gt-time-limit-factor", type=float, default=4.0)
    p.add_argument("--max-memory-gb", type=float, default=4.0, help="per program; <= 0 disables the cap")
    p.add_argument(
        "--exact-floats",
        action="store_true",
        help="no float tolerance, as evalplus graded before 0.3 (to compare with figures published then)",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    data = args.data or os.environ.get(f"{args.dataset.upper()}_OVERRIDE_PATH", "")
    grading = Grading(args.min_time_limit, args.gt_time_limit_factor, args.max_memory_gb, not args.exact_floats)
    results = evaluate(
        args.dataset,
        args.samples,
        data,
        args.out,
        args.cache,
        grading,
        args.workers,
        args.base_only,
        args.partial,
        args.version,
    )
    scores = results["scores"]
    metrics = [k for k in sorted(scores) if k != "n_tasks"]
    console.print(
        table(
            f"{args.dataset}: {args.samples}", ["tasks", *metrics], [[scores["n_tasks"], *(scores[m] for m in metrics)]]
        )
    )
    print(json.dumps({"out": str(args.out or default_out(args.samples)), **scores}))


if __name__ == "__main__":
    main()
