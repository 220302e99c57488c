"""The RL section of the run report: the reward curve, and base -> SFT -> RL scores with 95% intervals.

Intervals are the rest of the report's (:func:`sca.scores.interval` over each task's plus-test pass rate:
Wilson when every task is solved or not, a seeded bootstrap over tasks otherwise), so the same model gets the
same interval in both tables. With the 20-task slices of the CPU recipe they are wide: that width is the point
of showing them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sca.scores import Interval, interval, task_rates
from sca.step import Step

Rows = list[list[Any]]


def benchmark_intervals(eval_dir: Path) -> dict[str, Interval]:
    """Benchmark -> plus-test pass@1 over its tasks, with its 95% interval."""
    from sca.io import read_records
    from sca.records import EvalSample

    rates = task_rates(read_records(eval_dir, EvalSample), plus=True)
    by_bench: dict[str, list[float]] = defaultdict(list)
    for (bench, _), rate in sorted(rates.items()):
        by_bench[bench].append(rate)
    return {bench: interval(values) for bench, values in by_bench.items()}


def fmt(score: Interval | None) -> str:
    return "-" if score is None else str(score)


def rl_steps(steps: Sequence[Step]) -> list[Step]:
    return [s for s in steps if s.stage == "rl"]


def score_rows(steps: Sequence[Step], store: Path) -> Rows:
    """[round, benchmark, base, SFT, RL] per RL round; each cell the plus-test pass@1 with its interval."""
    by_name = {s.name: s for s in steps}
    rows: Rows = []
    for rl in rl_steps(steps):
        r = rl.name.split("/")[0]
        cells: dict[str, dict[str, Interval]] = {}
        for label, name in (("base", "base/eval"), ("sft", f"{r}/eval"), ("rl", f"{r}/rl/eval")):
            step = by_name.get(name)
            if step is not None and (step.out_dir(store) / "_SUCCESS").exists():
                cells[label] = benchmark_intervals(step.out_dir(store))
        for bench in sorted({b for c in cells.values() for b in c}):
            rows.append([r, bench, *(fmt(cells.get(k, {}).get(bench)) for k in ("base", "sft", "rl"))])
    return rows


def reward_curves(steps: Sequence[Step], store: Path) -> dict[str, list[dict[str, float]]]:
    out = {}
    for rl in rl_steps(steps):
        path = rl.out_dir(store) / "rewards.json"
        if path.exists():
            out[rl.name] = json.loads(path.read_text())["curve"]
    return out


def plot_rewards(curves: dict[str, list[dict[str, float]]], path: Path) -> Path | None:
    from sca.plots import pyplot, save_figure

    if not any(curves.values()):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, points in curves.items():
        for key, style in (("reward", "-"), ("eval_reward", "--")):
            xs = [p["step"] for p in points if key in p]
            if xs:
                label = f"{name} ({'held-out' if key == 'eval_reward' else 'train'})"
                ax.plot(xs, [p[key] for p in points if key in p], style, marker="o", label=label)
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("mean reward")
    ax.legend()
    return save_figure(plt, fig, path)


def section(steps: Sequence[Step], store: Path, run_dir: Path) -> list[str]:
    """Markdown lines of the RL section (empty when no RL step ran); writes rl_reward.png beside report.md."""
    if not rl_steps(steps):
        return []
    lines = ["## RL: reward and base -> SFT -> RL", ""]
    curves = reward_curves(steps, store)
    for name, points in curves.items():
        train = [p["reward"] for p in points if "reward" in p]
        held = [p["eval_reward"] for p in points if "eval_reward" in p]
        if train:
            lines.append(f"{name}: train reward {train[0]:.3f} -> {train[-1]:.3f} over {len(train)} logged steps.")
        if held:
            lines.append(f"{name}: held-out reward {held[0]:.3f} -> {held[-1]:.3f}.")
    rows = score_rows(steps, store)
    if rows:
        lines += ["", "Plus-test pass@1 with 95% intervals (as in the scores table):", ""]
        lines += ["| round | benchmark | base | SFT | RL |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    plot = plot_rewards(curves, run_dir / "rl_reward.png")
    if plot is not None:
        lines += ["", f"![rl reward]({plot.name})"]
    return [*lines, ""]
