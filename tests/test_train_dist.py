"""Slow SFT checks: torchrun with DeepSpeed ZeRO-2/3 on CPU (gloo), a real SIGKILL mid-run, SmolLM2 LoRA."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sca.config import TrainConfig
from sca.launch import LocalLauncher
from sca.runner import execute
from sca.step import Step
from tests.helpers.params import train_params
from tests.test_train import make_ctx, make_sft_dir

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("zero", ["zero2", "zero3"])
def test_torchrun_two_processes_with_deepspeed_saves_a_loadable_model(
    zero: str, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The way the pipeline runs training: ``torchrun --nproc_per_node 2 -m sca.step <dir>``."""
    import torch
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    store = tmp_path / "store"
    data = Step("r0/sft_data", "sca.curate.step:run", {"n": 16})
    make_sft_dir(data.out_dir(store), 16)
    cfg = TrainConfig(method="full", max_steps=3, global_batch_size=4, max_length=128, learning_rate=1e-3,
                      deepspeed=f"conf/deepspeed/{zero}.json", save_steps=2)  # fmt: skip
    params = train_params(tiny_model_dir, str(tmp_path / "cache"), cfg)
    train = Step("r0/train", "sca.train.sft:run", params, {"data": data}, where="torchrun")
    stats = execute(train, store, {}, LocalLauncher(torchrun_args=("--standalone", "--nproc_per_node=2")))
    assert stats["world_size"] == 2 and stats["grad_accum"] == 2 and stats["global_batch"] == 4
    assert stats["steps"] == 3
    model_dir = train.out_dir(store) / "model"
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert set(model.state_dict()) == set(base.state_dict())
    diffs = [not torch.equal(model.state_dict()[k], v) for k, v in base.state_dict().items()]
    assert any(diffs), "the trained weights were gathered and saved, not the initial ones"
    assert (model_dir / "chat_template.jinja").exists()


def test_sigkill_mid_training_then_rerun_resumes(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = make_sft_dir(tmp_path / "data", 16)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "sca.train.sft", "--data", str(data), "--base", str(tiny_model_dir), "--out", str(out),
           "train.method=full", "train.max_steps=200", "train.save_steps=2", "train.global_batch_size=2",
           "train.per_device_batch_size=2", "train.max_length=128"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=_env(), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300

    def saved() -> int:
        return max((int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*")), default=0)

    while saved() < 4 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; raise max_steps"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "model").exists()
    done = sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*"))
    assert done, "checkpoints were written before the kill"

    rerun = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    state = json.loads((out / "checkpoints" / "checkpoint-200" / "trainer_state.json").read_text())
    assert state["global_step"] == 200
    assert f"resuming from {out / 'checkpoints'}/checkpoint-" in rerun.stderr
    assert (out / "model" / "model.safetensors").exists()


def test_smollm2_lora_few_steps(tmp_path: Path, smollm2_dir: Path) -> None:
    from sca.train.sft import run

    data = make_sft_dir(tmp_path / "data", 8)
    stats = run(make_ctx(tmp_path / "out", data, smollm2_dir, method="lora", max_steps=4, global_batch_size=2,
                         per_device_batch_size=2, max_length=256, learning_rate=1e-4))  # fmt: skip
    assert stats["steps"] == 4 and stats["loss_first"] > 0
    assert (tmp_path / "out" / "model" / "model.safetensors").exists()


def test_smollm2_full_finetuning_few_steps(tmp_path: Path, smollm2_dir: Path) -> None:
    from sca.train.sft import run

    data = make_sft_dir(tmp_path / "data", 8)
    stats = run(make_ctx(tmp_path / "out", data, smollm2_dir, method="full", max_steps=2, global_batch_size=2,
                         per_device_batch_size=1, max_length=256, learning_rate=1e-5, packing=True))  # fmt: skip
    assert stats["steps"] == 2 and stats["padding_ratio"] == 0.0
    assert (tmp_path / "out" / "model" / "model.safetensors").exists()
