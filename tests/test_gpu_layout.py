"""GPU layout of generation (issue 14, item 10): every visible GPU by default, and SLURM shards that get the
GPUs their engine layout needs. GPUs are faked (CUDA_VISIBLE_DEVICES / torch's count); engines are recorded,
never started."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from sca.config import BackendConfig, ConfigError
from sca.launch import SubmititLauncher, make_launcher
from sca.llm import parallel, vllm_backend
from sca.llm.contract import ModelSpec
from sca.step import Step
from tests.test_config import composed

SPEC = ModelSpec("/m", "m", None, "auto", 4096, None)


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What open_vllm starts: ("engine", devices) or ("pool", [devices per engine]), on a faked GPU machine."""
    started: list[Any] = []
    monkeypatch.setattr(vllm_backend, "_on_gpu", lambda: True)
    monkeypatch.setattr(
        vllm_backend, "VLLMBackend", lambda spec, rt: started.append(("engine", os.environ["CUDA_VISIBLE_DEVICES"]))
    )
    monkeypatch.setattr(
        parallel, "DataParallel", lambda name, engine, spec, rt, groups: started.append(("pool", groups, rt))
    )
    return started


def backend_runtime(*overrides: str) -> BackendConfig:
    return composed(*overrides).generate.backend


@pytest.mark.parametrize("experiment", ["codeqwen7b", "qwen25coder7b"])
def test_paper_7b_runs_generate_with_one_engine_per_visible_gpu(
    experiment: str, engines: list[Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7")
    with caplog.at_level(logging.INFO):
        vllm_backend.open_vllm(SPEC, backend_runtime(f"experiment={experiment}"))
    [(kind, groups, rt)] = engines
    assert kind == "pool" and groups == [str(i) for i in range(8)]
    assert rt.data_parallel_size == 1, "each worker opens a single engine"
    assert "8 engine(s) x tensor parallel 1" in caplog.text


def test_auto_layout_counts_torch_gpus_when_no_device_list_is_set(
    engines: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    vllm_backend.open_vllm(SPEC, BackendConfig(tensor_parallel_size=2, data_parallel_size=0))
    assert engines[0][:2] == ("pool", ["0,1", "2,3"])


def test_starcoder2_layout_and_the_limits_of_a_node(engines: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7,0,1,2,3")
    vllm_backend.open_vllm(SPEC, backend_runtime("experiment=starcoder2_15b"))
    assert engines[0][:2] == ("pool", ["4,5", "6,7", "0,1", "2,3"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # one GPU: a single engine, in this process
    vllm_backend.open_vllm(SPEC, BackendConfig(tensor_parallel_size=1, data_parallel_size=0))
    assert engines[1] == ("engine", "3")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    with pytest.raises(ValueError, match="needs 8 GPUs, 4 visible"):
        vllm_backend.open_vllm(SPEC, BackendConfig(tensor_parallel_size=2, data_parallel_size=4))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(ValueError, match="needs 2 GPUs, 1 visible"):
        vllm_backend.open_vllm(SPEC, BackendConfig(tensor_parallel_size=2, data_parallel_size=0))


def test_negative_data_parallel_is_refused_at_the_entry() -> None:
    with pytest.raises(ConfigError, match="generate.backend.data_parallel_size=-1"):
        composed("generate.backend.data_parallel_size=-1")


def sbatch_lines(launcher: SubmititLauncher, step: Step, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    # submitit refuses to build a SLURM executor where srun is missing; the job script is all we check.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    executor = launcher._executor(step, 1, launcher.gpus(step))
    text: str = executor._executor._make_submission_file_text("python -m sca.step x", "uid")
    return text


@pytest.mark.parametrize(
    ("experiment", "gpus"),
    [("starcoder2_15b", 8), ("codeqwen7b", 8)],  # TP 2 x DP 4; DP 0 = the whole node
)
def test_slurm_generation_shards_get_the_gpus_of_their_engine_layout(
    experiment: str, gpus: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = composed(f"experiment={experiment}", "launcher=slurm", f"paths.root={tmp_path}")
    launcher = make_launcher(cfg)
    assert isinstance(launcher, SubmititLauncher) and launcher.generation_gpus == gpus
    responses = Step("r0/responses", "sca.generate.responses:run", {}, where="subprocess", num_shards=8)
    script = sbatch_lines(launcher, responses, tmp_path, monkeypatch)
    for line in (f"#SBATCH --gpus-per-node={gpus}", "#SBATCH --ntasks-per-node=1", "#SBATCH --nodes=1"):
        assert line in script, line
    executions = Step("r0/executions", "sca.sandbox.step:run", {}, num_shards=8)
    assert launcher.gpus(executions) == 0
    assert "--gpus-per-node" not in sbatch_lines(launcher, executions, tmp_path, monkeypatch)


def test_slurm_layout_that_does_not_fit_a_node_is_refused(tmp_path: Path) -> None:
    over = composed("experiment=starcoder2_15b", "launcher=slurm", "launcher.gpus_per_node=4")
    with pytest.raises(ConfigError, match="does not fit launcher.gpus_per_node=4"):
        make_launcher(over)
    one = composed("experiment=codeqwen7b", "launcher=slurm", "generate.backend.data_parallel_size=2",
                   "generate.backend.tensor_parallel_size=2")  # fmt: skip
    assert make_launcher(one).generation_gpus == 4  # type: ignore[attr-defined]
    remote = composed("experiment=codeqwen7b", "launcher=slurm", "generate.backend.name=openai")
    assert make_launcher(remote).generation_gpus == 0  # type: ignore[attr-defined]
