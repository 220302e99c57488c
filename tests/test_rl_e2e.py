"""The loop with RL on, end to end through `python -m sca.main`: tiny model (generation scripted, the rest real),
and the embedded SmolLM2 default on CPU, shrunk. Minutes each: slow tier."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BENCHMARKS, TEST_CACHE
from tests.test_e2e_tiny import ROOT, STEPS, ran_steps, sca_main, step_dir

pytestmark = pytest.mark.slow
RL_STEPS = {*STEPS, "r0/rl", "r0/rl/eval"}


def test_tiny_loop_with_rl_runs_sft_then_grpo_then_eval_and_reports_it(
    tmp_path: Path, tiny_model_dir: Path, server_url: str
) -> None:
    first = sca_main(tmp_path, tiny_model_dir, server_url, "rl.enabled=true")
    assert first.returncode == 0
    assert ran_steps(first.stderr) == RL_STEPS
    store = tmp_path / "store"
    rl = step_dir(store, "r0/rl")
    stats = json.loads((rl / "stats.json").read_text())
    assert stats["steps"] == 2 and stats["tasks_train"] >= 1
    assert (rl / "model" / "config.json").exists() and (rl / "rewards.json").exists()
    rl_eval = [p for p in (store / "r0" / "rl").glob("eval-*") if p.is_dir()]
    assert len(rl_eval) == 1 and (rl_eval[0] / "scores.json").exists()
    spec = json.loads((rl_eval[0] / "spec.json").read_text())
    assert spec["inputs"]["model"] == str(rl), "the RL model is what gets evaluated"
    [run_dir] = list((tmp_path / "runs" / "tiny").iterdir())
    report = (run_dir / "report.md").read_text()
    assert "RL: reward and base -> SFT -> RL" in report and "| r0 | humaneval |" in report
    assert (run_dir / "rl_reward.png").exists()

    again = sca_main(tmp_path, tiny_model_dir, server_url, "rl.enabled=true")
    assert again.returncode == 0 and ran_steps(again.stderr) == set(), "all cached"
    knob = sca_main(tmp_path, tiny_model_dir, server_url, "rl.enabled=true", "rl.beta=0.1")
    assert knob.returncode == 0 and ran_steps(knob.stderr) == {"r0/rl", "r0/rl/eval"}


@pytest.mark.timeout(3600)  # the default's whole generation (~17 min on 2 cores), then SFT, GRPO and eval
def test_smollm2_default_with_rl_on_cpu(tmp_path: Path, smollm2_dir: Path) -> None:
    """`python -m sca.main rl.enabled=true` on the embedded default: generation as it is (fewer seeds leave no task
    SmolLM2 solves only sometimes), training, RL and evaluation shrunk."""
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    args = [
        sys.executable, "-m", "sca.main", "rl.enabled=true", f"paths.root={tmp_path}", f"paths.data={BENCHMARKS}",
        f"paths.cache={TEST_CACHE}", "logger=none", "train.max_steps=4", "rl.max_steps=2", "rl.global_batch_size=8",
        "rl.max_completion_length=96", "eval.limit=4", "eval.max_tokens=128", "eval.include_base=false",
    ]  # fmt: skip
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        print(proc.stdout[-5000:], proc.stderr[-20000:])
    store = tmp_path / "store"
    if "no learnable RL task" in proc.stderr:
        pytest.fail(
            "SmolLM2 produced no task with a pass rate strictly between 0 and 1 at this size: " + proc.stderr[-2000:]
        )
    assert proc.returncode == 0
    assert (step_dir(store, "r0/rl") / "model" / "config.json").exists()
    assert list((store / "r0" / "rl").glob("eval-*/scores.json"))
