"""Bad input fails at the entry, before any step runs: exit code 2, one line naming the key, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sca.config import ConfigError, to_config

ROOT = Path(__file__).resolve().parent.parent
BASE = {"run": {"name": "t"}, "model": {"name_or_path": "m"}}


def sca_main(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "sca.main", f"paths.root={tmp_path}", "paths.data=", *overrides]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.name_or_path=/nonexistent", "model.name_or_path=/nonexistent"),
        ("generate.responses.sampling.n=-1", "generate.responses.sampling.n=-1"),
        ("train.learning_rate=-1", "train.learning_rate=-1"),
        ("sandbox.timeout_s=0", "sandbox.timeout_s=0"),
        ("model.name_or_path=embedded:gpt5", "model.name_or_path=embedded:gpt5"),
    ],
)
def test_bad_input_fails_at_the_entry_with_one_line(tmp_path: Path, override: str, key: str) -> None:
    proc = sca_main(tmp_path, override)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and key in lines[0], lines
    assert not (tmp_path / "store").exists(), "no step ran"


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"generate": {"concepts": {"sampling": {"max_tokens": 0}}}}, "generate.concepts.sampling.max_tokens=0"),
        ({"generate": {"instructions": {"sampling": {"temperature": -0.1}}}}, "generate.instructions.sampling"),
        ({"generate": {"responses": {"sampling": {"top_p": 0.0}}}}, "generate.responses.sampling.top_p=0.0"),
        ({"generate": {"responses": {"sampling": {"stop": [""]}}}}, "generate.responses.sampling.stop"),
        ({"generate": {"judge": {"num_fewshots": -1}}}, "generate.judge.num_fewshots=-1"),
        ({"sandbox": {"memory_mb": 0}}, "sandbox.memory_mb=0"),
        ({"train": {"num_train_epochs": 0}}, "train.num_train_epochs=0"),
        ({"train": {"max_steps": 0}}, "train.max_steps=0"),
        ({"train": {"lora": {"r": 0}}}, "train.lora.r=0"),
        ({"eval": {"n_samples": 0}}, "eval.n_samples=0"),
        ({"curate": {"dedup_threshold": 1.5}}, "curate.dedup_threshold=1.5"),
        ({"launcher": {"num_shards": 0}}, "launcher.num_shards=0"),
        ({"generate": {"backend": {"batch_size": 0}}}, "generate.backend.batch_size=0"),
    ],
)
def test_ranges_are_checked_with_the_full_key(node: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("[", r"\[")):
        to_config({**BASE, **node})


def test_valid_edges_pass() -> None:
    cfg = to_config(
        {**BASE, "generate": {"responses": {"sampling": {"temperature": 0, "top_p": 1.0, "stop": ["```\n\n"]}}}}
    )
    assert cfg.generate.responses.sampling.stop == ["```\n\n"]
    assert to_config({**BASE, "train": {"max_steps": -1}}).train.max_steps == -1


def test_a_model_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    proc = sca_main(tmp_path, f"model.name_or_path={weights}")
    assert proc.returncode == 2 and "is a file, not a model directory" in proc.stderr
