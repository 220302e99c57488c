"""The report shows its numbers: every funnel stage, every score with n and a 95% interval, the tasks that
flipped between base and tuned, and whether the change is within noise."""

from __future__ import annotations

from pathlib import Path

import pytest

from sca.config import EvalConfig, to_config
from sca.eval.evalplus import EvalParams
from sca.io import write_finished_step, write_json
from sca.records import EvalSample, make_id
from sca.report import collect, write_report
from sca.scores import interval, paired, task_rates
from sca.step import Step
from tests.helpers.params import benchmark_files, llm_params


def eval_step(store: Path, name: str, solved: dict[str, set[int]], n_tasks: int = 20) -> Step:
    step = Step(name, "sca.eval.evalplus:run", EvalParams(EvalConfig(), benchmark_files(), llm_params("m"), 0))
    records = [
        EvalSample(
            id=make_id(name, bench, str(t)), parent_id="", benchmark=bench, task_id=f"{prefix}/{t}", sample=0,
            prompt="p", completion="c", solution="s", finish_reason="stop",
            base_verdict="pass" if t in solved[bench] else "fail",
            plus_verdict="pass" if t in solved[bench] else "fail",
        )
        for bench, prefix in (("humaneval", "HumanEval"), ("mbpp", "Mbpp"))
        for t in range(n_tasks)
    ]  # fmt: skip
    out = write_finished_step(step.out_dir(store), records)
    write_json(out / "scores.json", {})
    return step


def test_wilson_interval_is_not_empty_at_zero_and_holds_the_estimate() -> None:
    zero = interval([0.0] * 20)
    assert zero.value == 0 and zero.low == 0 and 0.15 < zero.high < 0.17 and zero.n == 20
    one = interval([1.0] + [0.0] * 19)
    assert one.low < 0.05 < one.high and str(one) == "0.050 [0.009, 0.236]"
    rates = interval([0.5, 0.25, 0.0, 1.0])  # several samples per task: bootstrap over tasks
    assert rates.low < rates.value < rates.high


def test_paired_counts_flips_and_calls_small_changes_noise() -> None:
    base = {("h", "a"): 1.0, ("h", "b"): 0.0, ("h", "c"): 0.0, ("h", "d"): 1.0}
    tuned = {("h", "a"): 0.0, ("h", "b"): 1.0, ("h", "c"): 1.0, ("h", "d"): 1.0}
    [p] = paired(base, tuned)
    assert (p.gained, p.lost, p.both, p.neither) == (["b", "c"], ["a"], 1, 0)
    assert p.p_value == 1.0 and p.verdict == "within noise"
    many = paired({("h", str(i)): 0.0 for i in range(12)}, {("h", str(i)): 1.0 for i in range(12)})[0]
    assert many.p_value < 0.001 and many.verdict == "beyond noise"


def test_task_rates_plus_needs_both_verdicts() -> None:
    rec = EvalSample(id="x", parent_id="", benchmark="mbpp", task_id="Mbpp/2", sample=0, prompt="", completion="",
                     solution="", base_verdict="pass", plus_verdict="fail")  # fmt: skip
    assert task_rates([rec], plus=False) == {("mbpp", "Mbpp/2"): 1.0}
    assert task_rates([rec], plus=True) == {("mbpp", "Mbpp/2"): 0.0}


def test_report_prints_intervals_paired_view_and_every_funnel_stage(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    store, run_dir = tmp_path / "store", tmp_path / "run"
    run_dir.mkdir()
    base = eval_step(store, "base/eval", {"humaneval": set(), "mbpp": {0, 3}})
    tuned = eval_step(store, "r0/eval", {"humaneval": {5}, "mbpp": {3, 7, 11}})
    seeds = Step("seeds", "sca.generate.seeds:run", {})
    results = {"seeds": {"found": 3278, "records": 64, "seconds": 1.0}, "base/eval": {}, "r0/eval": {}}
    cfg = to_config({"run": {"name": "t"}, "model": {"name_or_path": "m"}})
    path = write_report(cfg, [seeds, base, tuned], store, results, run_dir, None)
    text = path.read_text()
    assert "| base | humaneval | 0.000 | 0.000 [0.000, 0.161] | 0.000 | 0.000 [0.000, 0.161] | 20 |" in text
    assert "| r0 | humaneval | 0.050 | 0.050 [0.009, 0.236] |" in text
    assert "| humaneval | r0 | 20 | 0 | 1 | 0 | 19 | 1.000 | within noise |" in text
    assert "| mbpp | r0 | 20 | 1 | 2 | 1 | 16 | 1.000 | within noise |" in text
    assert "| mbpp | r0 | gained (tuned only) | Mbpp/7, Mbpp/11 |" in text
    assert "| mbpp | r0 | lost (base only) | Mbpp/0 |" in text
    assert "| functions found | 3278 |" in text
    for png in ("funnel.png", "eval.png", "paired.png"):
        assert (run_dir / png).stat().st_size > 1000, png
    report = collect([seeds, base, tuned], store, results)
    assert [row[0] for row in report.task_grid] == [
        "r0 vs base, humaneval\n+1 -0, p=1.00: within noise",
        "r0 vs base, mbpp\n+2 -1, p=1.00: within noise",
    ]
    assert [task for task, _ in report.task_grid[1][1]][:3] == ["Mbpp/0", "Mbpp/1", "Mbpp/2"]


def test_report_without_a_base_eval_has_no_paired_view(tmp_path: Path) -> None:
    store = tmp_path / "store"
    tuned = eval_step(store, "r0/eval", {"humaneval": {1}, "mbpp": set()}, n_tasks=5)
    report = collect([tuned], store, {"r0/eval": {}})
    assert report.paired == [] and report.task_grid == []
    assert [r[1] for r in report.scores] == ["humaneval", "mbpp"] and report.scores[0][6] == 5
