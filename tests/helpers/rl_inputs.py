"""Inputs of the rl step built at test time: a round's curated data, responses, executions and SFT model."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from sca.config import RLConfig, SandboxConfig
from sca.io import SUCCESS
from sca.records import Execution, Response, SFTExample, make_id, to_json
from sca.rl.grpo import RLParams
from sca.step import StepContext
from tests.helpers.params import WANDB_OFF

PASSING = "```python\ndef add_{k}(x):\n    return x + {k}\n```"
FORGED = "```python\nimport os\nos._exit(0)\n```"


def write_step(path: Path, records: Sequence[Any]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    rows = sorted(records, key=lambda r: r.id)
    (path / "records.jsonl").write_text("".join(to_json(r) + "\n" for r in rows))
    (path / SUCCESS).write_text("ok\n")
    return path


def round_inputs(
    root: Path, model: Path, n_tasks: int, verdicts: Sequence[str] = ("passed", "failed"), strong: bool | None = None
) -> dict[str, Path]:
    """``n_tasks`` instructions "add k", each with one response per verdict; the first (passing) one is curated."""
    examples, responses, executions = [], [], []
    for k in range(n_tasks):
        inst = make_id("instruction", str(k))
        text = f"Write a Python function add_{k}(x) that returns x plus {k}."
        for i, verdict in enumerate(verdicts):
            r = Response(
                id=make_id(inst, str(i)),
                parent_id=inst,
                sample=i,
                text=PASSING.format(k=k),
                solution=f"def add_{k}(x):\n    return x + {k}\n",
                tests=f"assert add_{k}(1) == {1 + k}\nassert add_{k}(-{k}) == 0",
            )
            responses.append(r)
            executions.append(Execution(id=make_id(r.id, "exec"), parent_id=r.id, verdict=verdict, strong_tests=strong))
        chosen = responses[-len(verdicts)]
        examples.append(
            SFTExample(
                id=make_id(chosen.id, text),
                parent_id=chosen.id,
                prompt=[{"role": "user", "content": text}],
                completion=[{"role": "assistant", "content": chosen.text}],
            )
        )
    train = root / "train"
    train.mkdir(parents=True, exist_ok=True)
    if not (train / "model").exists():
        (train / "model").symlink_to(model, target_is_directory=True)
    return {
        "data": write_step(root / "sft_data", examples),
        "responses": write_step(root / "responses", responses),
        "executions": write_step(root / "executions", executions),
        "model": train,
    }


FAST = {
    "num_generations": 2,
    "global_batch_size": 4,
    "per_device_batch_size": 4,
    "max_completion_length": 48,
    "max_steps": 2,
    "learning_rate": 1e-3,
    "save_steps": 1000,
    "eval_steps": 1000,
    "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"},
}


def rl_ctx(out: Path, inputs: dict[str, Path], **overrides: Any) -> StepContext[RLParams]:
    """The context the pipeline gives the rl step, with RLConfig fields overridden."""
    fields = {f.name for f in dataclasses.fields(RLConfig)}
    merged = {**FAST, **overrides}
    from sca.config import LoraConfig

    if isinstance(merged.get("lora"), dict):
        merged["lora"] = LoraConfig(**merged["lora"])
    cfg = RLConfig(**{k: v for k, v in merged.items() if k in fields})
    params = RLParams(cfg, SandboxConfig(timeout_s=5, workers=2), 0, WANDB_OFF)
    return StepContext(name="r0/rl", out=out, inputs=inputs, params=params)


def scripted_generate(tokenizer: Any, answer: Any) -> Any:
    """A ``generate`` that writes ``answer(task_k, row)`` after each prompt instead of sampling (test double).

    The completions are real tokens of the policy's tokenizer, so the trainer scores them with the real
    model; only what is said is fixed, so the rewards are known in advance.
    """

    def generate(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        rows = []
        for i, ids in enumerate(input_ids):
            k = int(re.findall(r"add_(\d+)", tokenizer.decode(ids))[-1])
            text = answer(k, i)
            rows.append(tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
        width = max(len(r) for r in rows)
        pad = tokenizer.pad_token_id
        tail = torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=input_ids.dtype)
        return torch.cat([input_ids, tail.to(input_ids.device)], dim=1)

    return generate
