"""The report at the end of every run: funnel, verdicts, training loss, eval scores, time, artifacts.

The same figures go to the terminal (tables), to ``report.md`` with PNG plots in the run directory,
and to W&B (tables, images, and the SFT dataset and final model as artifacts with lineage).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sca.config import Config
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
    scores: Rows = field(default_factory=list)  # [model, benchmark, pass@1 base, pass@1 plus, tasks, data]
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
        if step.stage == "eval" and (out / "scores.json").exists():
            scores = json.loads((out / "scores.json").read_text())
            model = step.name.rsplit("/", 1)[0]  # base, r0, r0/rl
            for bench, s in sorted(scores.items()):
                row = [model, bench, s.get("pass@1_base"), s.get("pass@1_plus"), s.get("n_tasks"), _data(step, bench)]
                report.scores.append(row)
    return report


def _data(step: Step, bench: str) -> str:
    """Which data, and how it was graded: ``v0.1.9, exact floats``."""
    from sca.benchmarks import data_label

    data = step.params.get("data", {}).get(bench)
    label = data_label(bench, data) if data else "?"
    if step.params.get("eval", {}).get("float_tolerance") is False:
        label += ", exact floats"
    return label


def _loss_history(train_dir: Path) -> list[tuple[float, float]]:
    """(step, loss) from the trainer state the HF Trainer saves; the newest file wins."""
    states = sorted(train_dir.rglob("trainer_state.json"), key=lambda p: p.stat().st_mtime)
    if not states:
        return []
    history = json.loads(states[-1].read_text()).get("log_history", [])
    return [(float(h["step"]), float(h["loss"])) for h in history if "loss" in h]


def _plots(report: Report, run_dir: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: dict[str, Path] = {}
    if report.funnel:
        fig, ax = plt.subplots(figsize=(8, 0.4 * len(report.funnel) + 1))
        labels = [str(r[0]) for r in report.funnel][::-1]
        ax.barh(labels, [r[1] for r in report.funnel][::-1], color="#4c72b0")
        ax.set_xlabel("records")
        ax.set_title("funnel: seeds to SFT examples")
        fig.tight_layout()
        paths["funnel"] = run_dir / "funnel.png"
        fig.savefig(paths["funnel"], dpi=100)
        plt.close(fig)
    if any(report.losses.values()):
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, history in report.losses.items():
            if history:
                ax.plot([h[0] for h in history], [h[1] for h in history], label=name)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("training loss")
        ax.legend()
        fig.tight_layout()
        paths["loss"] = run_dir / "loss.png"
        fig.savefig(paths["loss"], dpi=100)
        plt.close(fig)
    if report.scores:
        fig, ax = plt.subplots(figsize=(7, 4))
        labels = [f"{r[0]}\n{r[1]}" for r in report.scores]
        xs = range(len(labels))
        ax.bar([x - 0.2 for x in xs], [r[2] or 0 for r in report.scores], width=0.4, label="base tests")
        ax.bar([x + 0.2 for x in xs], [r[3] or 0 for r in report.scores], width=0.4, label="plus tests")
        ax.set_xticks(list(xs), labels)
        ax.set_ylabel("pass@1")
        ax.legend()
        fig.tight_layout()
        paths["eval"] = run_dir / "eval.png"
        fig.savefig(paths["eval"], dpi=100)
        plt.close(fig)
    return paths


SECTIONS: dict[str, tuple[str, list[str]]] = {
    "funnel": ("Funnel: seeds to SFT examples", ["stage", "records"]),
    "drops": ("Dropped, by reason", ["step", "reason", "count"]),
    "verdicts": ("Execution verdicts", ["step", "verdict", "count", "share"]),
    "scores": (
        "EvalPlus pass@1, base model vs tuned",
        ["model", "benchmark", "base tests", "plus tests", "tasks", "data"],
    ),
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
    plots = _plots(report, run_dir)
    path = run_dir / "report.md"
    from sca.rl.report import section as rl_section  # the RL stage's own section (reward curve, intervals)

    path.write_text(to_markdown(cfg, report, plots) + "\n".join(rl_section(steps, store, run_dir)))
    console.print(f"report: {path}")
    if tracker is not None:
        tracker.log_tables({f"report/{k}": (cols, getattr(report, k)) for k, (_, cols) in SECTIONS.items()})
        tracker.log_images({f"report/{k}": p for k, p in plots.items()})
        tracker.log_summary({f"eval/{r[0]}/{r[1]}/pass@1_plus": r[3] or 0.0 for r in report.scores})
        tracker.log_summary({f"eval/{r[0]}/{r[1]}/pass@1_base": r[2] or 0.0 for r in report.scores})
        _log_eval_tasks(steps, store, tracker)
        _log_artifacts(cfg, steps, store, tracker)
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


def _log_artifacts(cfg: Config, steps: Sequence[Step], store: Path, tracker: WandbTracker) -> None:
    """The SFT dataset and the trained model, the model declaring the dataset it was trained on."""
    for step in steps:
        out = step.out_dir(store)
        if step.stage == "sft_data" and (out / "records.jsonl").exists():
            tracker.log_artifact(f"{cfg.run.name}-{step.name.replace('/', '-')}", "dataset", out / "records.jsonl")
        if step.stage == "train" and (out / "model").exists():
            data = f"{cfg.run.name}-{step.name.split('/')[0]}-sft_data:latest"
            tracker.log_artifact(
                f"{cfg.run.name}-{step.name.replace('/', '-')}", "model", out / "model", uses=[data], reference=True
            )
