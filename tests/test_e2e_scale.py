"""Rounds and sweeps on the tiny model (issue 9): round 2 generates with round 1's checkpoint, and a 2-trial
sweep (Hydra multirun, W&B offline) shares every generation step. Minutes: marked slow."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BENCHMARKS
from tests.test_e2e_tiny import ROOT, sca_main, step_dir

pytestmark = pytest.mark.slow


def test_round_two_generates_with_round_one_model_and_a_sweep_shares_generation(
    tmp_path: Path, tiny_model_dir: Path, server_url: str
) -> None:
    rounds = sca_main(tmp_path, tiny_model_dir, server_url, "run.rounds=2")
    assert rounds.returncode == 0
    store = tmp_path / "store"
    r0_train = step_dir(store, "r0/train")
    for stage in ("concepts", "instructions", "responses"):
        spec = json.loads((step_dir(store, f"r1/{stage}") / "spec.json").read_text())
        assert spec["inputs"]["model"] == str(r0_train), stage
        assert spec["params"]["llm"]["trained_by"] == "r0/train"
    assert (step_dir(store, "r1/eval") / "scores.json").exists()

    # Two trials differing in a training knob: the first is the round-0 run above (all cached), the second
    # reuses every generation step and retrains.
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    args = [
        sys.executable, "-m", "sca.main", "-m", "experiment=tiny", f"paths.root={tmp_path}", f"paths.data={BENCHMARKS}",
        f"model.name_or_path={tiny_model_dir}", "generate.backend.name=openai",
        f"generate.backend.base_url={server_url}", "logger.mode=offline", "train.learning_rate=1e-3,3e-3",
    ]  # fmt: skip
    sweep = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert sweep.returncode == 0, sweep.stderr[-5000:]
    ran = re.findall(r"INFO sca.runner: run\s+(\S+)", sweep.stderr)
    assert sorted(ran) == ["r0/eval", "r0/train"], ran
    assert len(list(store.glob("r0/train-*/_SUCCESS"))) == 2
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) >= 3
