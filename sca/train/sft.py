"""The train step: supervised fine-tuning with TRL's SFTTrainer (full or LoRA), optionally under DeepSpeed.

Every rank of ``torchrun ... -m sca.step <step_dir>`` calls :func:`run`; only rank 0's counters are kept.
The paper's recipe is the default (docs/training.md): loss on the response and its EOS only, Adafactor,
lr 1e-5, linear schedule, warmup 0.05, global batch 64 (gradient accumulation derived from the world
size, so the recipe does not change with the number of GPUs), length 1280, dropout 0, no clipping.

On disk, under the step directory::

    checkpoints/checkpoint-N/   Trainer checkpoints (model, optimizer, RNG, data position): a re-run resumes from the last
    adapter/                    LoRA only: the trained adapter
    model/                      the final model, a plain HF checkpoint (LoRA merged when train.merge_lora) with the
                                tokenizer and the chat template it was trained with

CLI (the same step without the pipeline; also what ``launch/`` runs)::

    python -m sca.train.sft --step STEP_DIR                          # a step dir written by the orchestrator
    python -m sca.train.sft --data SFT_DIR --base MODEL --out DIR [train.method=full train.max_steps=30 ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sca.config import ConfigError
from sca.models import load_tokenizer, model_path
from sca.records import SFTExample
from sca.step import StepContext
from sca.train.data import tokenize_examples

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent.parent


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_rank0() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def grad_accum(global_batch: int, per_device: int, world: int, section: str = "train") -> int:
    """Accumulation steps that keep ``global_batch`` whatever the number of processes (SFT's and RL's)."""
    per_step = per_device * world
    if per_step <= 0 or global_batch % per_step:
        raise ConfigError(
            f"{section}.global_batch_size={global_batch} is not a multiple of per_device_batch_size ({per_device}) "
            f"x world size ({world}) = {per_step}; change {section}.per_device_batch_size or the number of processes"
        )
    return global_batch // per_step


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


def wandb_report_to(cfg: Mapping[str, Any]) -> str:
    """Point TRL's W&B callback at the experiment's group; the callback itself logs on rank 0 only."""
    mode = str(cfg.get("mode", "disabled"))
    if mode == "auto":
        mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
    os.environ["WANDB_MODE"] = mode
    if mode == "disabled":
        return "none"
    names = {
        "project": "WANDB_PROJECT",
        "entity": "WANDB_ENTITY",
        "group": "WANDB_RUN_GROUP",
        "name": "WANDB_NAME",
        "dir": "WANDB_DIR",
    }
    for key, env in names.items():
        if cfg.get(key):
            os.environ[env] = str(cfg[key])
    if cfg.get("dir"):
        Path(str(cfg["dir"])).mkdir(parents=True, exist_ok=True)
    os.environ["WANDB_JOB_TYPE"] = "train"
    return "wandb"


class CountingCollator:
    """Wraps the trainer's collator to count real tokens, padded slots and supervised tokens of this rank."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.counts: Counter[str] = Counter()

    def __call__(self, examples: list[dict[str, Any]]) -> Any:
        batch = self.inner(examples)
        self.counts["tokens"] += sum(len(e["input_ids"]) for e in examples)
        self.counts["slots"] += int(batch["input_ids"].numel())
        self.counts["supervised_tokens"] += int((batch["labels"] != -100).sum())
        self.counts["micro_batches"] += 1
        return batch


def lora_config(params: Mapping[str, Any]) -> Any:
    """PEFT's LoRA config from a ``method``/``lora`` params block (SFT's and RL's), or None for full tuning."""
    if params["method"] != "lora":
        return None
    from peft import LoraConfig

    lora = params["lora"]
    return LoraConfig(
        r=int(lora["r"]),
        lora_alpha=int(lora["alpha"]),
        lora_dropout=float(lora["dropout"]),
        target_modules=lora["target_modules"],
        task_type="CAUSAL_LM",
    )


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


def build_trainer(ctx: StepContext) -> tuple[Any, Any, dict[str, float]]:
    """The SFTTrainer for a step (not yet trained), its tokenizer and the data/batch counters."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    train, rt = ctx.params["train"], ctx.runtime
    base = model_path(ctx.params["base"], ctx.inputs, str(rt.get("cache", "~/.cache/sca")))
    tokenizer = load_tokenizer(base, ctx.params.get("chat_template"))
    examples = ctx.read("data", SFTExample)
    if not examples:
        raise ValueError(f"{ctx.inputs['data']}: no SFT examples to train on")
    rows, counts = tokenize_examples(tokenizer, examples, int(train["max_length"]))
    if not rows:
        raise ValueError(f"{ctx.inputs['data']}: every example was dropped ({dict(counts)}); raise train.max_length")

    world, per_device = world_size(), int(rt.get("per_device_batch_size", 1))
    accum = grad_accum(int(train["global_batch_size"]), per_device, world)
    bf16 = use_bf16(rt.get("bf16", "auto"))
    ds = deepspeed_file(train.get("deepspeed"))
    if ds:
        prepare_deepspeed()
    cuda = torch.cuda.is_available()
    args = SFTConfig(
        output_dir=str(ctx.out / "checkpoints"),
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accum,
        learning_rate=float(train["learning_rate"]),
        lr_scheduler_type=str(train["lr_scheduler_type"]),
        warmup_steps=float(train["warmup_ratio"]),  # transformers 5: a float < 1 is a ratio of the steps
        optim=str(train["optim"]),
        num_train_epochs=float(train["num_train_epochs"]),
        max_steps=int(train["max_steps"]),
        max_grad_norm=float(train.get("max_grad_norm", 0.0)),
        max_length=int(train["max_length"]),
        packing=bool(train["packing"]),
        packing_strategy="bfd",  # padding-free with position ids: no attention across packed examples
        bf16=bf16,
        gradient_checkpointing=bool(rt.get("gradient_checkpointing", False)),
        gradient_checkpointing_kwargs={"use_reentrant": False},
        deepspeed=ds,
        use_cpu=not cuda and not ds,
        accelerator_config={"use_configured_state": True} if ds and not cuda else None,
        save_strategy="steps",
        save_steps=int(rt.get("save_steps", 200)),
        save_total_limit=2,
        logging_steps=int(rt.get("logging_steps", 1)),
        report_to=wandb_report_to(rt.get("wandb", {})),
        run_name=str(rt.get("wandb", {}).get("name") or ctx.name),
        seed=int(ctx.params.get("seed", 0)),
        data_seed=int(ctx.params.get("seed", 0)),
        dataset_num_proc=None,
    )
    # After SFTConfig: under ZeRO-3 the weights are partitioned while they load.
    model = load_model(base, bf16)
    peft_config = lora_config(train)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),  # already tokenized with labels: TRL keeps our mask
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.data_collator = CountingCollator(trainer.data_collator)
    from sca.train.bar import StepBar

    trainer.add_callback(StepBar(ctx.name))
    batch = {
        "world_size": world,
        "per_device_batch": per_device,
        "grad_accum": accum,
        "global_batch": per_device * accum * world,
        "bf16": int(bf16),
    }
    log.info(
        "batch: global %(global_batch)d = per device %(per_device_batch)d x accum %(grad_accum)d x world %(world_size)d",
        batch,
    )
    return trainer, tokenizer, {**counts, **batch}


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _sum_over_ranks(counts: Mapping[str, int]) -> dict[str, int]:
    import torch
    import torch.distributed as dist

    keys = sorted(counts)
    if not (dist.is_available() and dist.is_initialized()):
        return {k: int(counts[k]) for k in keys}
    device = "cuda" if torch.cuda.is_available() and dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([float(counts[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: int(v) for k, v in zip(keys, t.tolist(), strict=True)}


def save_final(ctx: StepContext, trainer: Any, tokenizer: Any) -> Path:
    """Write ``model/``: a plain HF checkpoint plus the tokenizer with the template it was trained with."""
    train = ctx.params["train"]
    final, tmp = ctx.out / "model", ctx.out / "model.tmp"
    if is_rank0():
        shutil.rmtree(tmp, ignore_errors=True)
    _barrier()
    if train["method"] == "lora":
        adapter = ctx.out / "adapter"
        trainer.save_model(str(adapter))  # every rank: ZeRO-3 gathers the shards
        if is_rank0():
            if train.get("merge_lora", True):
                base = model_path(ctx.params["base"], ctx.inputs, str(ctx.runtime.get("cache", "~/.cache/sca")))
                merge_adapter(base, adapter, tmp, use_bf16(ctx.runtime.get("bf16", "auto")))
            else:
                shutil.copytree(adapter, tmp)
    else:
        trainer.save_model(str(tmp))  # every rank, for the same reason
    if is_rank0():
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    _barrier()
    return final


def merge_adapter(base: str, adapter: Path, out: Path, bf16: bool) -> None:
    """Fold a LoRA adapter into a fresh copy of the base weights (works whatever sharding trained it)."""
    from peft import PeftModel

    merged = PeftModel.from_pretrained(load_model(base, bf16), str(adapter)).merge_and_unload()
    merged.save_pretrained(out)
    log.info("merged %s into %s -> %s", adapter, base, out)


def _step_of(path: Path) -> int:
    try:
        return int(path.name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def last_checkpoint(ckpts: Path) -> Path | None:
    """The newest checkpoint that was written completely; partial ones (a kill while saving) are removed.

    The Trainer writes ``trainer_state.json`` last, after weights, optimizer and RNG states, so a checkpoint
    without a readable one, naming its own step, was cut short.
    """
    found = sorted((p for p in ckpts.glob("checkpoint-*") if p.is_dir() and _step_of(p) >= 0), key=_step_of)
    complete, partial = None, []
    for path in found:
        try:
            ok = json.loads((path / "trainer_state.json").read_text())["global_step"] == _step_of(path)
        except (OSError, ValueError, KeyError):
            ok = False
        if ok:
            complete = path
        else:
            partial.append(path)
    _barrier()  # every rank has chosen before rank 0 deletes anything
    if is_rank0():
        for path in partial:
            log.warning("removing %s: an incomplete checkpoint (the run was killed while saving it)", path)
            shutil.rmtree(path, ignore_errors=True)
    return complete


def run(ctx: StepContext) -> dict[str, float]:
    """Train, save ``model/``, return the counters (rank 0's are kept)."""
    from sca.progress import print_counters

    started = time.time()
    trainer, tokenizer, counters = build_trainer(ctx)
    last = last_checkpoint(ctx.out / "checkpoints")
    if last:
        log.info("resuming from %s", last)
    result = trainer.train(resume_from_checkpoint=str(last) if last else None)
    save_final(ctx, trainer, tokenizer)
    seen = _sum_over_ranks(trainer.data_collator.counts)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    train_s = float(result.metrics.get("train_runtime", 0.0))  # the training loop only: no loading, JIT or saving
    out: dict[str, float] = {
        **counters,
        **seen,
        "train_loss": float(result.training_loss),
        "loss_first": float(losses[0]) if losses else float("nan"),
        "loss_last": float(losses[-1]) if losses else float("nan"),
        "steps": int(trainer.state.global_step),
        "resumed_from_step": _step_of(last) if last else 0,
        "padding_ratio": 1.0 - seen["tokens"] / seen["slots"] if seen.get("slots") else 0.0,
        "train_seconds": round(train_s, 3),
        "total_seconds": round(time.time() - started, 3),
        "tokens_per_s": seen.get("tokens", 0) / train_s if train_s > 0 else 0.0,
    }
    if is_rank0():
        print_counters(f"train {ctx.name}", out)
    return out


def cli_context(
    data: Path, base: str, out: Path, overrides: Sequence[str], chat_template: str | None, seed: int
) -> StepContext:
    """A step context from the command line: ``train.*`` overrides are checked against TrainConfig."""
    from omegaconf import OmegaConf

    from sca.config import TrainConfig, hash_view, runtime_view

    dotlist = [o.removeprefix("train.") for o in overrides]
    merged = OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.from_dotlist(dotlist))
    cfg = OmegaConf.to_object(merged)
    assert isinstance(cfg, TrainConfig)
    return StepContext(
        name="train",
        out=out,
        inputs={"data": data},
        params={"train": hash_view(cfg), "base": {"name_or_path": base}, "chat_template": chat_template, "seed": seed},
        runtime={
            **runtime_view(cfg),
            "cache": "~/.cache/sca",
            "wandb": {"mode": os.environ.get("WANDB_MODE", "disabled")},
        },
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="SFT (TRL + PEFT + DeepSpeed); run it under torchrun for several processes."
    )
    parser.add_argument("--step", type=Path, help="a train step directory with spec.json (written by the orchestrator)")
    parser.add_argument("--data", type=Path, help="an sft_data step directory (records.jsonl of SFTExample, _SUCCESS)")
    parser.add_argument("--base", help="model to fine-tune: hub id, local dir, or embedded:smollm2")
    parser.add_argument("--out", type=Path, help="output directory (checkpoints/, model/)")
    parser.add_argument("--chat-template", help="Jinja file replacing the tokenizer's chat template")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="TrainConfig overrides: train.method=full train.max_steps=30 ...")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.step:
        from sca.step import run_shard

        run_shard(args.step.resolve())
        return
    if not (args.data and args.base and args.out):
        parser.error("give --step, or all of --data, --base and --out")
    ctx = cli_context(args.data, args.base, args.out, args.overrides, args.chat_template, args.seed)
    ctx.out.mkdir(parents=True, exist_ok=True)
    run(ctx)


if __name__ == "__main__":
    main()
