"""Sharded steps through submitit's local executor (real subprocess jobs), and the SLURM job script."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from sca.launch import SubmititLauncher
from sca.runner import run_plan
from sca.step import Step
from tests.helpers.steps import numbers_params
from tests.test_step import numbers_step

ROOT = Path(__file__).resolve().parent.parent


def test_killed_shard_is_retried_and_output_matches_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    single = numbers_step(tmp_path, n=40)
    run_plan([single], tmp_path / "single")
    expected = (single.out_dir(tmp_path / "single") / "records.jsonl").read_text()

    params = dataclasses.replace(single.params, die_once_shard=1)
    sharded = Step(single.name, single.fn, params, num_shards=3, where="subprocess")
    launcher = SubmititLauncher(folder=tmp_path / "submitit", cluster="local", max_retries=1, time_min=5)
    stats = run_plan([sharded], tmp_path / "sharded", launcher=launcher)["numbers"]
    out = sharded.out_dir(tmp_path / "sharded")
    assert Path(single.params.calls_file + ".died").exists(), "shard 1 was killed once"
    assert (out / "records.jsonl").read_text() == expected
    assert stats["in"] == 40
    # 3 first attempts + 1 retry of the killed shard; finished shards are not redone.
    assert len((tmp_path / "calls").read_text()) == 1 + 4


def test_shards_that_keep_failing_fail_the_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    params = numbers_params(30, tmp_path / "calls", crash_after=1)
    step = Step("numbers", "tests.helpers.steps:numbers", params, num_shards=2)
    launcher = SubmititLauncher(folder=tmp_path / "submitit", cluster="local", max_retries=1, time_min=5)
    with pytest.raises(RuntimeError, match=r"shards \[0, 1\] still failing after 1 retries"):
        run_plan([step], tmp_path / "store", launcher=launcher)
    assert not (step.out_dir(tmp_path / "store") / "_SUCCESS").exists()


def test_training_job_script_for_two_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # submitit refuses to build a SLURM executor where srun is missing; the script is all we check here.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    launcher = SubmititLauncher(folder=tmp_path, cluster="slurm", partition="gpu", account="proj", nnodes=2,
                                gpus_per_node=8, time_min=600)  # fmt: skip
    executor = launcher._executor(Step("r0/train", "sca.train.sft:run", {}, where="torchrun"), nodes=2, gpus=8)
    script = executor._executor._make_submission_file_text("python -m sca.step x", "uid")
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --partition=gpu", "#SBATCH --account=proj", "#SBATCH --time=600",
                 "#SBATCH --job-name=sca-r0-train"):  # fmt: skip
        assert line in script, line
    assert "srun" in script
