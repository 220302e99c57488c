"""Kill the whole loop in the middle of generation and in the middle of training: the re-runs finish with
the same data, and training continues from its last checkpoint (issue 8). Minutes: marked slow."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import BENCHMARKS
from tests.helpers.scripted_server import serve
from tests.test_e2e_tiny import ROOT, sca_main, step_dir

pytestmark = pytest.mark.slow
TRAIN = ("train.max_steps=80", "train.save_steps=4", "train.global_batch_size=1", "eval.limit=1")


@pytest.fixture(scope="module")
def slow_server() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = serve(port, "scripted", delay_s=0.05)
    yield f"http://127.0.0.1:{port}/v1"
    server.shutdown()


def run_until_killed(root: Path, tiny: Path, url: str, ready: Callable[[Path], bool]) -> None:
    """Start the loop, SIGKILL its whole process group once ``ready(store)`` holds."""
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    args = [
        sys.executable, "-m", "sca.main", "experiment=tiny", f"paths.root={root}", f"paths.data={BENCHMARKS}",
        f"model.name_or_path={tiny}", "generate.backend.name=openai", f"generate.backend.base_url={url}",
        "generate.backend.batch_size=2", "logger=none", *TRAIN,
    ]  # fmt: skip
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and not ready(root / "store"):
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before the kill point"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def records_of(step: Path) -> list[dict[str, object]]:
    """A step's records, without execution timings (measurements, not data)."""
    rows = [json.loads(line) for line in (step / "records.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "duration_s"} for row in rows]


def committed(store: Path, name: str) -> bool:
    found = list(store.glob(f"{name}-*/progress-00000.jsonl"))
    return bool(found) and len(found[0].read_text().splitlines()) >= 1


def checkpointed(store: Path) -> bool:
    return any(store.glob("r0/train-*/checkpoints/checkpoint-8/trainer_state.json"))


def test_killed_in_generation_and_in_training_finishes_with_the_same_data(
    tmp_path: Path, tiny_model_dir: Path, slow_server: str
) -> None:
    reference = tmp_path / "reference"
    assert sca_main(reference, tiny_model_dir, slow_server, "generate.backend.batch_size=2", *TRAIN).returncode == 0

    killed = tmp_path / "killed"
    run_until_killed(killed, tiny_model_dir, slow_server, lambda store: committed(store, "r0/responses"))
    assert not list((killed / "store").glob("r0/responses-*/_SUCCESS"))
    run_until_killed(killed, tiny_model_dir, slow_server, checkpointed)
    assert not list((killed / "store").glob("r0/train-*/_DONE-*")), "the kill came after training had finished"
    # torchrun's worker lives in its own session: it must die with the run, not train on as an orphan.
    [ckpts] = (killed / "store").glob("r0/train-*/checkpoints")
    before = sorted(p.name for p in ckpts.iterdir())
    time.sleep(5)
    assert sorted(p.name for p in ckpts.iterdir()) == before, "training went on after the run was killed"
    assert sca_main(killed, tiny_model_dir, slow_server, "generate.backend.batch_size=2", *TRAIN).returncode == 0

    for name in ("seeds", "r0/concepts", "r0/instructions", "r0/responses", "r0/executions", "r0/sft_data"):
        a, b = (records_of(step_dir(root / "store", name)) for root in (reference, killed))
        assert a == b, f"{name} differs after the kills"
    stats = json.loads((step_dir(killed / "store", "r0/train") / "stats.json").read_text())
    assert stats["resumed_from_step"] >= 8 and stats["steps"] == 80
    ref_w = load_file(step_dir(reference / "store", "r0/train") / "model" / "model.safetensors")
    new_w = load_file(step_dir(killed / "store", "r0/train") / "model" / "model.safetensors")
    assert ref_w.keys() == new_w.keys()
    for key in ref_w:
        torch.testing.assert_close(new_w[key], ref_w[key], atol=1e-5, rtol=1e-4)
