"""The report at the end of every run: funnel, verdicts, training loss, eval scores, time, artifacts.

The same figures go to the terminal (tables), to ``report.md`` with PNG plots in the run directory,
and to W&B (tables, images, and the SFT dataset and final model as artifacts with lineage). Every eval
score carries its task count and 95% interval, and each tuned model is compared with the base model task
by task (sca.scores).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sca.config import Config
from sca.eval.evalplus import EvalParams
from sca.progress import console, table
from sca.step import Step
from sca.tracking import WandbTracker

log = logging.getLogger(__name__)
Rows = list[list[Any]]


@dataclass
class Report:
    funnel: Rows = field(default_factory=list)  # [stage, count]
    drops: Rows = field(default_factory=list)  # [step, reason, count]
    verdicts: Rows = field(default_factory=list)  # [step, verdict, count, share]
    scores: Rows = field(default_factory=list)  # [model, benchmark, base, base CI, plus, plus CI, tasks, data]
    paired: Rows = field(default_factory=list)  # [benchmark, model, tasks, both, gained, lost, neither, p, verdict]
    flips: Rows = field(default_factory=list)  # [benchmark, model, direction, task ids]
    intervals: list[dict[str, Any]] = field(default_factory=list)  # {model, benchmark, base, plus: Interval}
    task_grid: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)  # label -> [(task, state)]
    timing: Rows = field(default_factory=list)  # [step, status, seconds, records, records/s]
    artifacts: Rows = field(default_factory=list)  # [step, directory]
    losses: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # step -> [(step, loss)]


def _num(stats: Mapping[str, Any], key: str) -> float:
    value = stats.get(key, 0)
    return float(value) if isinstance(value, int | float) else 0.0


def collect(steps: Sequence[Step], store: Path, results: Mapping[str, Mapping[str, Any]]) -> Report:
    report = Report()
    for step in steps:
        stats = results.get(step.name, {})
        out = step.out_dir(store)
        records = int(_num(stats, "records"))
        seconds = _num(stats, "seconds")
        cached = bool(stats.get("cached"))
        report.timing.append(
            [step.name, "cached" if cached else "ran", seconds, records, records / seconds if seconds else 0.0]
        )
        report.artifacts.append([step.name, str(out)])
        for key in sorted(stats):
            if key.startswith("dropped_") and _num(stats, key):
                report.drops.append([step.name, key.removeprefix("dropped_"), int(_num(stats, key))])
        if step.name == "seeds" and "found" in stats:
            report.funnel.append(["functions found", int(_num(stats, "found"))])
        if step.stage in ("seeds", "concepts", "instructions", "responses"):
            report.funnel.append([step.name, records])
        if step.stage == "executions":
            kinds = {k.removeprefix("verdict_"): int(_num(stats, k)) for k in stats if k.startswith("verdict_")}
            total = sum(kinds.values()) or 1
            for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1]):
                report.verdicts.append([step.name, kind, count, count / total])
            report.funnel.append([f"{step.name} (passed)", kinds.get("passed", 0)])
        if step.stage == "sft_data":
            for stage in ("selected", "dedup", "decontam"):  # curation's own funnel, past execution
                report.funnel.append([f"{step.name} (after {stage})", int(_num(stats, f"funnel_{stage}"))])
            report.funnel.append([f"{step.name} (SFT examples)", records])
        if step.stage == "train":
            report.losses[step.name] = _loss_history(out)
        if step.stage == "eval" and (out / "_SUCCESS").exists():
            _eval_rows(report, step, out)
    _paired_rows(report, steps, store)
    return report


def _model(step: Step) -> str:
    """base, r0, r0/rl: the eval step's name without its last part, so an RL row never collides with SFT's."""
    return step.name.rsplit("/", 1)[0]


def _eval_rows(report: Report, step: Step[EvalParams], out: Path) -> None:
    """Scores with their n and 95% intervals, from the step's per-sample verdicts."""
    from sca.io import read_records
    from sca.records import EvalSample
    from sca.scores import interval, task_rates

    records = read_records(out, EvalSample)
    for bench in sorted({r.benchmark for r in records}):
        mine = [r for r in records if r.benchmark == bench]
        base, plus = (interval(list(task_rates(mine, p).values())) for p in (False, True))
        report.scores.append(
            [_model(step), bench, base.value, str(base), plus.value, str(plus), plus.n, _data(step.params, bench)]
        )
        report.intervals.append({"model": _model(step), "benchmark": bench, "base": base, "plus": plus})


def _paired_rows(report: Report, steps: Sequence[Step], store: Path) -> None:
    """Each tuned model against the base model, task by task, on the plus tests."""
    from sca.io import read_records
    from sca.records import EvalSample
    from sca.scores import paired, task_order, task_rates

    evals = [s for s in steps if s.stage == "eval" and (s.out_dir(store) / "_SUCCESS").exists()]
    base = next((s for s in evals if s.name.startswith("base/")), None)
    if base is None:
        return
    base_rates = task_rates(read_records(base.out_dir(store), EvalSample), plus=True)
    for step in evals:
        if step is base:
            continue
        rates = task_rates(read_records(step.out_dir(store), EvalSample), plus=True)
        for p in paired(base_rates, rates):
            model = _model(step)
            report.paired.append(
                [p.benchmark, model, p.tasks, p.both, len(p.gained), len(p.lost), p.neither, p.p_value, p.verdict]
            )
            report.flips.append([p.benchmark, model, "gained (tuned only)", ", ".join(p.gained) or "-"])
            report.flips.append([p.benchmark, model, "lost (base only)", ", ".join(p.lost) or "-"])
            cells = []
            for key in sorted((k for k in base_rates.keys() & rates.keys() if k[0] == p.benchmark), key=task_order):
                b, t = base_rates[key] > 0.5, rates[key] > 0.5
                cells.append((key[1], "both" if b and t else "gained" if t else "lost" if b else "neither"))
            label = f"{model} vs base, {p.benchmark}\n+{len(p.gained)} -{len(p.lost)}, p={p.p_value:.2f}: {p.verdict}"
            report.task_grid.append((label, cells))


def _data(params: EvalParams, bench: str) -> str:
    """Which data, and how it was graded: ``v0.1.9, exact floats``."""
    from sca.benchmarks import data_label

    label = data_label(bench, params.benchmarks.hashes[bench])
    return label if params.eval.float_tolerance else label + ", exact floats"


def _loss_history(train_dir: Path) -> list[tuple[float, float]]:
    """(step, loss) from the trainer state the HF Trainer saves; the newest file wins."""
    states = sorted(train_dir.rglob("trainer_state.json"), key=lambda p: p.stat().st_mtime)
    if not states:
        return []
    history = json.loads(states[-1].read_text()).get("log_history", [])
    return [(float(h["step"]), float(h["loss"])) for h in history if "loss" in h]


SECTIONS: dict[str, tuple[str, list[str]]] = {
    "funnel": ("Funnel: seeds to SFT examples", ["stage", "records"]),
    "drops": ("Dropped, by reason", ["step", "reason", "count"]),
    "verdicts": ("Execution verdicts", ["step", "verdict", "count", "share"]),
    "scores": (
        "EvalPlus pass@1 with 95% intervals, base model vs tuned",
        ["model", "benchmark", "base tests", "base 95% CI", "plus tests", "plus 95% CI", "tasks", "data"],
    ),
    "paired": (
        "Base vs tuned, task by task (plus tests; exact McNemar test on the tasks that changed)",
        ["benchmark", "model", "tasks", "both", "gained", "lost", "neither", "p", "change"],
    ),
    "flips": ("Tasks that flipped", ["benchmark", "model", "direction", "tasks"]),
    "timing": ("Wall time and throughput per step", ["step", "status", "seconds", "records", "records/s"]),
    "artifacts": ("Artifacts", ["step", "directory"]),
}


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def to_markdown(cfg: Config, report: Report, plots: Mapping[str, Path]) -> str:
    lines = [f"# sca report: {cfg.run.name}", "", f"Model: `{cfg.model.name_or_path}`; rounds: {cfg.run.rounds}.", ""]
    for key, (title, columns) in SECTIONS.items():
        rows: Rows = getattr(report, key)
        lines += [f"## {title}", ""]
        if not rows:
            lines += ["(none)", ""]
            continue
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
        lines.append("")
    for name, history in report.losses.items():
        if history:
            lines += [f"Training loss ({name}): first {history[0][1]:.4f}, last {history[-1][1]:.4f}.", ""]
    for name, path in plots.items():
        lines += [f"![{name}]({path.name})", ""]
    return "\n".join(lines)


def write_report(
    cfg: Config,
    steps: Sequence[Step],
    store: Path,
    results: Mapping[str, Mapping[str, Any]],
    run_dir: Path,
    tracker: WandbTracker | None,
) -> Path:
    report = collect(steps, store, results)
    for key, (title, columns) in SECTIONS.items():
        rows = getattr(report, key)
        if rows:
            console.print(table(title, columns, rows))
    from sca.plots import all_plots

    plots = all_plots(report, run_dir)
    path = run_dir / "report.md"
    from sca.rl.report import section as rl_section  # the RL stage's own section (reward curve, intervals)

    path.write_text(to_markdown(cfg, report, plots) + "\n".join(rl_section(steps, store, run_dir)))
    console.print(f"report: {path}")
    if tracker is not None:
        tracker.log_tables({f"report/{k}": (cols, getattr(report, k)) for k, (_, cols) in SECTIONS.items()})
        tracker.log_images({f"report/{k}": p for k, p in plots.items()})
        tracker.log_summary({f"eval/{r[0]}/{r[1]}/pass@1_plus": r[4] for r in report.scores})
        tracker.log_summary({f"eval/{r[0]}/{r[1]}/pass@1_base": r[2] for r in report.scores})
        _log_eval_tasks(steps, store, tracker)
    return path


def _log_eval_tasks(steps: Sequence[Step], store: Path, tracker: WandbTracker) -> None:
    """One table per evaluated model: every task's verdicts beside the code that was tested."""
    from sca.io import read_records
    from sca.records import EvalSample

    columns = ["benchmark", "task_id", "sample", "base", "plus", "finish", "solution"]
    for step in steps:
        out = step.out_dir(store)
        if step.stage != "eval" or not (out / "_SUCCESS").exists():
            continue
        rows = [
            [e.benchmark, e.task_id, e.sample, e.base_verdict, e.plus_verdict, e.finish_reason, e.solution]
            for e in read_records(out, EvalSample)
        ]
        tracker.log_tables({f"eval/{step.name.rsplit('/', 1)[0]}/tasks": (columns, rows)})
