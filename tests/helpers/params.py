"""Typed step params for tests: an LLM through a named backend, the benchmark files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sca.benchmarks import BenchmarkFiles
from sca.config import BackendConfig, ModelConfig, TrainConfig
from sca.llm.contract import LLMParams
from sca.tracking import WandbRun
from sca.train.sft import TrainParams


def llm_params(
    model: Path | str,
    backend: str = "hf",
    max_model_len: int = 512,
    chat: bool = False,
    cache: str = "~/.cache/sca",
    **backend_fields: Any,
) -> LLMParams:
    return LLMParams(
        BackendConfig(name=backend, **backend_fields),
        ModelConfig(name_or_path=str(model), max_model_len=max_model_len, chat=chat),
        trained_by="",
        chat=chat,
        cache=cache,
    )


def benchmark_files(
    humaneval: str = "", mbpp: str = "", cache: str = "~/.cache/sca", hashed: bool = True
) -> BenchmarkFiles:
    """Both benchmark files (or their releases), named for decontamination when ``hashed``; hashes are labels."""
    paths = {"humaneval": str(humaneval), "mbpp": str(mbpp)}
    hashes = {b: f"test:{b}" for b in paths} if hashed else {}
    return BenchmarkFiles(hashes, paths, {"humaneval": "", "mbpp": ""}, cache)


def train_params(base: Path | str, cache: str, train: TrainConfig, chat_template: str | None = None) -> TrainParams:
    """What the planner gives the train step, W&B off."""
    model = ModelConfig(name_or_path=str(base), chat_template=chat_template)
    return TrainParams(train, model, 0, cache, WANDB_OFF)


WANDB_OFF = WandbRun(mode="disabled", project="sca", entity=None, group="", name="", dir="")
