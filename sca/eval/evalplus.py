"""The eval step: generate solutions for HumanEval+ / MBPP+ with any backend, then score them with EvalPlus.

Params: :class:`EvalParams`. Inputs: none (a named model) or ``{"model": <train step dir>}``
(``llm.trained_by`` names that step).

Two resumable phases, each through its own journal: samples go to ``samples/`` per generation batch,
then verdicts go to the step's records per scoring batch, so a crash loses at most one batch of either.
Outputs: ``EvalSample`` records (prompt, completion, tested program, verdicts) and ``scores.json``
``{"humaneval": {"pass@1_base": .., "pass@1_plus": .., "n_tasks": ..}, "mbpp": {...}}``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sca.benchmarks import Benchmark, BenchmarkFiles, load_benchmark
from sca.config import EvalConfig
from sca.eval.extract import extract_code
from sca.eval.prompts import answer_text, build_request
from sca.eval.scoring import Grading, Scorer, Verdict, summarize
from sca.io import Journal, iter_records, shard_name, write_json
from sca.llm.contract import LLMParams, request_seed
from sca.llm.registry import open_backend
from sca.progress import bar, console, table
from sca.records import EvalSample, make_id
from sca.step import StepContext

log = logging.getLogger(__name__)
T = TypeVar("T")
SCORE_BATCH = 64


@dataclass(frozen=True)
class EvalParams:
    eval: EvalConfig
    benchmarks: BenchmarkFiles
    """The benchmarks of ``eval.benchmarks``: their content hashes and files."""
    llm: LLMParams
    seed: int


def task_key(benchmark: str, task_id: str) -> str:
    """Journal/shard key of one task (hex, as ``ctx.mine`` wants)."""
    return make_id("eval-task", benchmark, task_id)


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), max(1, size)):
        yield items[i : i + size]


def load_benchmarks(cfg: EvalConfig, files: BenchmarkFiles) -> dict[str, Benchmark]:
    """The selected tasks of each benchmark; the files must still have the content the step was planned for."""
    out = {}
    for name in cfg.benchmarks:
        path = files.resolve(name)
        bench = load_benchmark(name, path)
        planned = files.hashes[name]
        if not planned.startswith("release:") and planned != bench.data_hash:
            raise ValueError(
                f"{path}: evalplus hash {bench.data_hash}, but this step was planned for {name} data with hash "
                f"{planned}; the file changed after planning (or a download differs from the release): re-run"
            )
        out[name] = bench.select(cfg.limit, cfg.task_ids)
    known = {t for b in out.values() for t in b.problems}
    unknown = sorted(set(cfg.task_ids) - known)
    if unknown:
        raise ValueError(f"eval.task_ids names tasks in none of the benchmarks {list(out)}: {unknown}")
    return out


def generate(ctx: StepContext[EvalParams], benchmarks: Mapping[str, Benchmark]) -> Path:
    """Phase 1: samples for every task this shard owns, committed per batch. Returns the samples file."""
    cfg, llm = ctx.params.eval, ctx.params.llm
    sampling = {"n": cfg.n_samples, "temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.max_tokens}
    samples_dir = ctx.out / "samples"
    samples_dir.mkdir(parents=True, exist_ok=True)
    tasks = [(b, t) for b, bench in benchmarks.items() for t in bench.problems if ctx.mine(task_key(b, t))]
    with Journal(samples_dir, ctx.shard) as journal:
        todo = [(b, t) for b, t in tasks if task_key(b, t) not in journal.done]
        if todo:
            backend = open_backend(llm, ctx.inputs)
            try:
                with bar(len(tasks), f"{ctx.name} generate", unit="task", initial=len(tasks) - len(todo)) as progress:
                    for batch in batches(todo, llm.backend.batch_size):
                        requests = [
                            build_request(
                                b,
                                benchmarks[b].problems[t],
                                llm.chat,
                                request_seed(ctx.params.seed, f"{b}:{t}", "eval"),
                                sampling,
                                cfg.prefix_prompt,
                            )
                            for b, t in batch
                        ]
                        outputs = backend.generate(requests)
                        records = [
                            sample_record(b, benchmarks[b].problems[t], request, j, c.text, c.finish_reason)
                            for (b, t), request, completions in zip(batch, requests, outputs, strict=True)
                            for j, c in enumerate(completions)
                        ]
                        truncated = sum(r.finish_reason == "length" for r in records)
                        journal.commit([task_key(b, t) for b, t in batch], records, {"truncated": truncated})
                        progress.update(len(batch))
            finally:
                backend.close()
    return samples_dir / shard_name("records", ctx.shard)


def sample_record(
    benchmark: str, problem: Mapping[str, Any], request: Any, sample: int, completion: str, finish_reason: str
) -> EvalSample:
    prompt = request.prompt if isinstance(request.prompt, str) else request.prompt[-1]["content"]
    solution = extract_code(answer_text(request, completion), problem["prompt"], problem["entry_point"])
    return EvalSample(
        id=make_id("eval", benchmark, problem["task_id"], str(sample)),
        parent_id="",
        benchmark=benchmark,
        task_id=problem["task_id"],
        sample=sample,
        prompt=prompt,
        completion=completion,
        solution=solution,
        finish_reason=finish_reason,
    )


def score(ctx: StepContext[EvalParams], benchmarks: Mapping[str, Benchmark], samples_file: Path) -> Counter[str]:
    """Phase 2: EvalPlus verdicts for every generated sample, committed per batch."""
    cfg = ctx.params.eval
    grading = Grading(
        min_time_limit=cfg.min_time_limit,
        gt_time_limit_factor=cfg.gt_time_limit_factor,
        max_memory_gb=cfg.max_memory_gb,
        float_tolerance=cfg.float_tolerance,
    )
    cache = Path(ctx.params.benchmarks.cache).expanduser()
    samples = list(iter_records(samples_file, EvalSample)) if samples_file.exists() else []
    with ctx.journal() as journal:
        todo = [s for s in samples if s.id not in journal.done]
        for name, bench in benchmarks.items():
            mine = [s for s in todo if s.benchmark == name]
            if not mine:
                continue
            with Scorer(bench, cache, grading, cfg.workers) as scorer:
                for batch in batches(mine, SCORE_BATCH):
                    verdicts = scorer.score([(s.task_id, s.solution) for s in batch], desc=f"{ctx.name} {name}")
                    scored = [
                        dataclasses.replace(s, base_verdict=v.base, plus_verdict=v.plus)
                        for s, v in zip(batch, verdicts, strict=True)
                    ]
                    journal.commit([s.id for s in batch], scored, batch_counts(name, scored))
        return Counter(journal.counters)


def batch_counts(benchmark: str, scored: Sequence[EvalSample]) -> dict[str, int]:
    return {
        f"{benchmark}/samples": len(scored),
        f"{benchmark}/passed_base": sum(s.base_verdict == "pass" for s in scored),
        f"{benchmark}/passed_plus": sum(s.base_verdict == "pass" and s.plus_verdict == "pass" for s in scored),
        f"{benchmark}/truncated": sum(s.finish_reason == "length" for s in scored),
    }


def scores_of(records: Sequence[EvalSample]) -> dict[str, dict[str, float]]:
    """pass@k per benchmark over the scored records (all samples of a task together)."""
    by_task: dict[str, dict[str, list[Verdict]]] = defaultdict(lambda: defaultdict(list))
    for r in sorted(records, key=lambda r: (r.benchmark, r.task_id, r.sample)):
        by_task[r.benchmark][r.task_id].append(Verdict(r.base_verdict, r.plus_verdict))
    return {name: summarize(tasks) for name, tasks in sorted(by_task.items())}


def run(ctx: StepContext[EvalParams]) -> dict[str, float]:
    benchmarks = load_benchmarks(ctx.params.eval, ctx.params.benchmarks)
    samples_file = generate(ctx, benchmarks)
    counters: dict[str, float] = dict(score(ctx, benchmarks, samples_file))
    # Every shard rewrites scores.json from all shards' records so far: the last one to finish sees them all.
    records = [r for path in sorted(ctx.out.glob("records-*.jsonl")) for r in iter_records(path, EvalSample)]
    scores = scores_of(records)
    write_json(ctx.out / "scores.json", scores)
    if ctx.num_shards == 1:  # rates do not add up across shards; counts do
        counters.update({f"{b}/{k}": v for b, s in scores.items() for k, v in s.items() if k != "n_tasks"})
    print_scores(ctx.name, scores)
    return counters


def print_scores(title: str, scores: Mapping[str, Mapping[str, float]]) -> None:
    metrics = sorted({k for s in scores.values() for k in s if k != "n_tasks"})
    rows = [[b, int(s["n_tasks"]), *(s.get(m, float("nan")) for m in metrics)] for b, s in scores.items()]
    console.print(table(f"{title}: EvalPlus", ["benchmark", "tasks", *metrics], rows))
