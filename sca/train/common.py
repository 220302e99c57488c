"""What SFT (:mod:`sca.train.sft`) and GRPO (:mod:`sca.rl.grpo`) share: processes and the global batch,
precision and DeepSpeed, W&B, the model with LoRA, checkpoints to resume from, and the final ``model/``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sca.config import ConfigError, LoraConfig
from sca.tracking import WandbRun

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent.parent

# ---- processes and the global batch ------------------------------------------------------------------


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_rank0() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def sum_over_ranks(counts: Mapping[str, int]) -> dict[str, int]:
    import torch
    import torch.distributed as dist

    keys = sorted(counts)
    if not (dist.is_available() and dist.is_initialized()):
        return {k: int(counts[k]) for k in keys}
    device = "cuda" if torch.cuda.is_available() and dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([float(counts[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: int(v) for k, v in zip(keys, t.tolist(), strict=True)}


def grad_accum(global_batch: int, per_device: int, world: int, section: str = "train") -> int:
    """Accumulation steps that keep ``global_batch`` whatever the number of processes (SFT's and RL's)."""
    per_step = per_device * world
    if per_step <= 0 or global_batch % per_step:
        raise ConfigError(
            f"{section}.global_batch_size={global_batch} is not a multiple of per_device_batch_size ({per_device}) "
            f"x world size ({world}) = {per_step}; change {section}.per_device_batch_size or the number of processes"
        )
    return global_batch // per_step


# ---- precision, DeepSpeed, W&B -----------------------------------------------------------------------


def use_bf16(setting: Any) -> bool:
    value = str(setting).lower()
    if value == "auto":
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise ValueError(f"train.bf16={setting!r} must be auto, true or false")


def deepspeed_file(path: str | None) -> str | None:
    """A DeepSpeed JSON path as given, or relative to the repository (conf/deepspeed/zero2.json)."""
    if not path:
        return None
    for candidate in (Path(path), ROOT / path):
        if candidate.is_file():
            return str(candidate.resolve())
    raise FileNotFoundError(f"train.deepspeed={path!r}: no such file (looked here and under {ROOT})")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare_deepspeed() -> None:
    """Make DeepSpeed start inside and outside a launcher, on GPUs and on CPUs."""
    if "WORLD_SIZE" not in os.environ:
        # One process without a launcher: otherwise DeepSpeed looks for MPI (mpi4py) to find its rank.
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
    import torch

    if not torch.cuda.is_available():
        # Measured on CPU: with no accelerator, accelerate picks no backend and records one process while
        # DeepSpeed starts a gloo group of WORLD_SIZE ranks (batch-size assertion, allgather errors).
        # A gloo PartialState made first, then reused by the Trainer, agrees with DeepSpeed. GPUs keep NCCL.
        from accelerate import PartialState

        os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
        PartialState(backend="gloo")


def wandb_report_to(run: WandbRun) -> str:
    """Point TRL's W&B callback at the experiment's group; the callback itself logs on rank 0 only."""
    os.environ["WANDB_MODE"] = run.mode
    if run.mode == "disabled":
        return "none"
    names = {
        "WANDB_PROJECT": run.project,
        "WANDB_ENTITY": run.entity,
        "WANDB_RUN_GROUP": run.group,
        "WANDB_NAME": run.name,
        "WANDB_DIR": run.dir,
    }
    os.environ.update({env: value for env, value in names.items() if value})
    if run.dir:
        Path(run.dir).mkdir(parents=True, exist_ok=True)
    os.environ["WANDB_JOB_TYPE"] = "train"
    return "wandb"


# ---- the model and LoRA ------------------------------------------------------------------------------


def lora_config(method: str, lora: LoraConfig) -> Any:
    """PEFT's LoRA config from SFT's or RL's ``method`` and ``lora`` section, or None for full tuning."""
    if method != "lora":
        return None
    from peft import LoraConfig as PeftLora

    return PeftLora(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )  # fmt: skip


def _zero_dropout(config: Any) -> None:
    # The paper forces dropout to 0 (StarCoder2 ships 0.1); every *dropout / *pdrop float in the config.
    for name, value in list(vars(config).items()):
        if isinstance(value, float) and ("dropout" in name or name.endswith("pdrop")):
            setattr(config, name, 0.0)


def load_model(path: str, bf16: bool) -> Any:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path)
    _zero_dropout(config)
    return AutoModelForCausalLM.from_pretrained(path, config=config, dtype=torch.bfloat16 if bf16 else torch.float32)


def merge_adapter(base: str, adapter: Path, out: Path, bf16: bool) -> None:
    """Fold a LoRA adapter into a fresh copy of the base weights (works whatever sharding trained it)."""
    from peft import PeftModel

    merged = PeftModel.from_pretrained(load_model(base, bf16), str(adapter)).merge_and_unload()
    merged.save_pretrained(out)
    log.info("merged %s into %s -> %s", adapter, base, out)


# ---- checkpoints and the final model -----------------------------------------------------------------


def step_of(path: Path) -> int:
    try:
        return int(path.name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def last_checkpoint(ckpts: Path) -> Path | None:
    """The newest checkpoint that was written completely; partial ones (a kill while saving) are removed.

    The Trainer writes ``trainer_state.json`` last, after weights, optimizer and RNG states, so a checkpoint
    without a readable one, naming its own step, was cut short.
    """
    found = sorted((p for p in ckpts.glob("checkpoint-*") if p.is_dir() and step_of(p) >= 0), key=step_of)
    complete, partial = None, []
    for path in found:
        try:
            ok = json.loads((path / "trainer_state.json").read_text())["global_step"] == step_of(path)
        except (OSError, ValueError, KeyError):
            ok = False
        if ok:
            complete = path
        else:
            partial.append(path)
    barrier()  # every rank has chosen before rank 0 deletes anything
    if is_rank0():
        for path in partial:
            log.warning("removing %s: an incomplete checkpoint (the run was killed while saving it)", path)
            shutil.rmtree(path, ignore_errors=True)
    return complete


def save_final(out: Path, trainer: Any, tokenizer: Any, lora: bool, merge_into: str | None, bf16: bool) -> Path:
    """Write ``out/model``: a plain HF checkpoint plus the tokenizer with the template it was trained with.

    With LoRA the adapter is saved in ``out/adapter`` and merged into the weights at ``merge_into``
    (None: the adapter itself is the model).
    """
    final, tmp = out / "model", out / "model.tmp"
    if is_rank0():
        shutil.rmtree(tmp, ignore_errors=True)
    barrier()
    if lora:
        adapter = out / "adapter"
        trainer.save_model(str(adapter))  # every rank: ZeRO-3 gathers the shards
        if is_rank0():
            if merge_into is not None:
                merge_adapter(merge_into, adapter, tmp, bf16)
            else:
                shutil.copytree(adapter, tmp)
    else:
        trainer.save_model(str(tmp))  # every rank, for the same reason
    if is_rank0():
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    barrier()
    return final
