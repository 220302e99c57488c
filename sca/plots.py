"""The report's figures: the funnel (log scale, counts printed), training loss, pass@1 with 95% intervals, and
the paired per-task view of each tuned model against the base model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol


class Report(Protocol):
    """What the figures read of the report (:class:`sca.report.Report` has it)."""

    @property
    def funnel(self) -> Sequence[Sequence[Any]]: ...
    @property
    def losses(self) -> dict[str, list[tuple[float, float]]]: ...
    @property
    def intervals(self) -> list[dict[str, Any]]: ...
    @property
    def task_grid(self) -> list[tuple[str, list[tuple[str, str]]]]: ...


SOLVED_COLORS = {"both": "#55a868", "gained": "#4c72b0", "lost": "#c44e52", "neither": "#dddddd"}


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def funnel(report: Report, path: Path) -> Path:
    """Horizontal bars on a log axis (3,278 functions and 3 examples on one figure), each with its count."""
    plt = pyplot()
    labels = [str(r[0]) for r in report.funnel][::-1]
    counts = [int(r[1]) for r in report.funnel][::-1]
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(counts) + 1.2))
    # A zero has no place on a log axis: its bar is left out, its count still printed.
    ax.barh(labels, [c if c > 0 else float("nan") for c in counts], color="#4c72b0")
    ax.set_xscale("log")
    top = max([*counts, 1])
    ax.set_xlim(0.8, top * 4)
    for y, c in enumerate(counts):
        ax.text(max(c, 0.8) * 1.08, y, f"{c:,}", va="center", fontsize=9)
    ax.set_xlabel("records (log scale)")
    ax.set_title("funnel: seeds to SFT examples")
    return save_figure(plt, fig, path)


def loss(report: Report, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, history in report.losses.items():
        if history:
            ax.plot([h[0] for h in history], [h[1] for h in history], label=name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.legend()
    return save_figure(plt, fig, path)


def scores(report: Report, path: Path) -> Path:
    """pass@1 per model and benchmark, base and plus tests side by side, with 95% intervals and n."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(report.intervals) + 2), 4.5))
    xs = list(range(len(report.intervals)))
    for offset, kind, color in ((-0.2, "base", "#8da0cb"), (0.2, "plus", "#4c72b0")):
        values = [iv[kind].value for iv in report.intervals]
        errors = [
            [iv[kind].value - iv[kind].low for iv in report.intervals],
            [iv[kind].high - iv[kind].value for iv in report.intervals],
        ]
        ax.bar([x + offset for x in xs], values, width=0.4, color=color, label=f"{kind} tests",
               yerr=errors, capsize=4, ecolor="black")  # fmt: skip
        for x, iv in zip(xs, report.intervals, strict=True):  # above the interval, not across it
            ax.text(x + offset, iv[kind].high + 0.01, f"{iv[kind].value:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(xs, [f"{iv['model']}\n{iv['benchmark']}\nn={iv['plus'].n}" for iv in report.intervals])
    ax.set_ylabel("pass@1 (95% interval)")
    # Up to the highest interval, not to 1: scores of a few percent must still be bars one can read.
    top = max(iv[kind].high for iv in report.intervals for kind in ("base", "plus"))
    ax.set_ylim(0, min(1.0, top * 1.15 + 0.05))
    ax.legend()
    ax.set_title("EvalPlus pass@1 with 95% intervals")
    return save_figure(plt, fig, path)


def paired(report: Report, path: Path) -> Path:
    """One row of cells per (tuned model, benchmark): each task colored by who solved it (plus tests)."""
    plt = pyplot()
    rows = report.task_grid
    width = max(len(cells) for _, cells in rows)
    fig, ax = plt.subplots(figsize=(min(2 + 0.28 * width, 24), 0.6 * len(rows) + 1.6))
    for y, (_, cells) in enumerate(rows):
        for x, (_, state) in enumerate(cells):
            ax.add_patch(plt.Rectangle((x, y), 0.9, 0.8, color=SOLVED_COLORS[state]))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, width)
    ax.set_ylim(len(rows), 0)
    ax.set_yticks([y + 0.4 for y in range(len(rows))], [label for label, _ in rows])
    ax.set_xlabel("task (in benchmark order)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in SOLVED_COLORS.values()]
    names = ["solved by both", "tuned only (gained)", "base only (lost)", "neither"]
    ax.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=4, fontsize=8)
    ax.set_title("base vs tuned, task by task (plus tests)")
    return save_figure(plt, fig, path)


def all_plots(report: Report, run_dir: Path) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    if report.funnel:
        paths["funnel"] = funnel(report, run_dir / "funnel.png")
    if any(report.losses.values()):
        paths["loss"] = loss(report, run_dir / "loss.png")
    if report.intervals:
        paths["eval"] = scores(report, run_dir / "eval.png")
    if report.task_grid:
        paths["paired"] = paired(report, run_dir / "paired.png")
    return paths
