"""The train step: supervised fine-tuning with TRL's SFTTrainer (full or LoRA), optionally under DeepSpeed.

Every rank of ``torchrun ... -m sca.step <step_dir>`` calls :func:`run`; only rank 0's counters are kept.
The paper's recipe is the default (docs/training.md): loss on the response and its EOS only, Adafactor,
lr 1e-5, linear schedule, warmup 0.05, global batch 64 (gradient accumulation derived from the world
size, so the recipe does not change with the number of GPUs), length 1280, dropout 0, no clipping.
What the step shares with GRPO (batch, precision, DeepSpeed, LoRA, checkpoints) is in :mod:`sca.train.common`.

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
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sca.config import DEFAULT_CACHE, ModelConfig, TrainConfig
from sca.models import load_tokenizer, resolve_model
from sca.params import runtime_field
from sca.records import SFTExample
from sca.step import StepContext
from sca.tracking import WandbRun
from sca.train.common import (
    deepspeed_file,
    grad_accum,
    is_rank0,
    last_checkpoint,
    load_model,
    lora_config,
    prepare_deepspeed,
    save_final,
    step_of,
    sum_over_ranks,
    use_bf16,
    wandb_report_to,
    world_size,
)
from sca.train.data import tokenize_examples

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainParams:
    train: TrainConfig
    base: ModelConfig
    """The model to fine-tune; its chat template (if any) renders the examples and is saved with the model."""
    seed: int
    cache: str = runtime_field()
    """Where embedded models are converted (paths.cache)."""
    wandb: WandbRun = runtime_field()


def base_path(params: TrainParams) -> str:
    return resolve_model(params.base.name_or_path, params.cache)


def run(ctx: StepContext[TrainParams]) -> dict[str, float]:
    """Train, save ``model/``, return the counters (rank 0's are kept)."""
    from sca.progress import print_counters

    started = time.time()
    params = ctx.params
    # 1. The trainer: the tokenized examples, the training arguments, the model (with LoRA).
    trainer, tokenizer, counters = build_trainer(ctx)
    # 2. Train, from the last complete checkpoint if an earlier run was killed.
    last = last_checkpoint(ctx.out / "checkpoints")
    if last:
        log.info("resuming from %s", last)
    result = trainer.train(resume_from_checkpoint=str(last) if last else None)
    # 3. model/: a plain checkpoint (LoRA merged into the base weights), with the tokenizer it was trained with.
    lora = params.train.method == "lora"
    merge_into = base_path(params) if lora and params.train.merge_lora else None
    save_final(ctx.out, trainer, tokenizer, lora, merge_into, use_bf16(params.train.bf16))
    # 4. The counters: data and batch, tokens seen on every rank, losses and speed.
    seen = sum_over_ranks(trainer.data_collator.counts)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    train_s = float(result.metrics.get("train_runtime", 0.0))  # the training loop only: no loading, JIT or saving
    out: dict[str, float] = {
        **counters,
        **seen,
        "train_loss": float(result.training_loss),
        "loss_first": float(losses[0]) if losses else float("nan"),
        "loss_last": float(losses[-1]) if losses else float("nan"),
        "steps": int(trainer.state.global_step),
        "resumed_from_step": step_of(last) if last else 0,
        "padding_ratio": 1.0 - seen["tokens"] / seen["slots"] if seen.get("slots") else 0.0,
        "train_seconds": round(train_s, 3),
        "total_seconds": round(time.time() - started, 3),
        "tokens_per_s": seen.get("tokens", 0) / train_s if train_s > 0 else 0.0,
    }
    if is_rank0():
        print_counters(f"train {ctx.name}", out)
    return out


def build_trainer(ctx: StepContext[TrainParams]) -> tuple[Any, Any, dict[str, float]]:
    """The SFTTrainer for a step (not yet trained), its tokenizer and the data/batch counters."""
    from datasets import Dataset
    from trl import SFTTrainer

    params = ctx.params
    train = params.train
    # The data: chat-templated examples, the loss on the response and its EOS only.
    base = base_path(params)
    tokenizer = load_tokenizer(base, params.base.chat_template)
    examples = ctx.read("data", SFTExample)
    if not examples:
        raise ValueError(f"{ctx.inputs['data']}: no SFT examples to train on")
    rows, counts = tokenize_examples(tokenizer, examples, train.max_length)
    if not rows:
        raise ValueError(f"{ctx.inputs['data']}: every example was dropped ({dict(counts)}); raise train.max_length")

    # The batch: the global batch is kept whatever the number of processes.
    world, per_device = world_size(), train.per_device_batch_size
    accum = grad_accum(train.global_batch_size, per_device, world)
    bf16 = use_bf16(train.bf16)
    ds = deepspeed_file(train.deepspeed)
    if ds:
        prepare_deepspeed()
    args = training_args(ctx, params, accum, bf16, ds)
    # After the arguments: under ZeRO-3 the weights are partitioned while they load.
    model = load_model(base, bf16)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),  # already tokenized with labels: TRL keeps our mask
        processing_class=tokenizer,
        peft_config=lora_config(train.method, train.lora),
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


def training_args(ctx: StepContext[TrainParams], params: TrainParams, accum: int, bf16: bool, ds: str | None) -> Any:
    """TRL's SFTConfig: the paper's recipe from the train section, checkpoints under ``checkpoints/``."""
    import torch
    from trl import SFTConfig

    train, cuda = params.train, torch.cuda.is_available()
    return SFTConfig(
        output_dir=str(ctx.out / "checkpoints"),
        per_device_train_batch_size=train.per_device_batch_size,
        gradient_accumulation_steps=accum,
        learning_rate=train.learning_rate,
        lr_scheduler_type=train.lr_scheduler_type,
        warmup_steps=train.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the steps
        optim=train.optim,
        num_train_epochs=train.num_train_epochs,
        max_steps=train.max_steps,
        max_grad_norm=train.max_grad_norm,
        max_length=train.max_length,
        packing=train.packing,
        packing_strategy="bfd",  # padding-free with position ids: no attention across packed examples
        bf16=bf16,
        gradient_checkpointing=train.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        deepspeed=ds,
        use_cpu=not cuda and not ds,
        accelerator_config={"use_configured_state": True} if ds and not cuda else None,
        save_strategy="steps",
        save_steps=train.save_steps,
        save_total_limit=2,
        logging_steps=train.logging_steps,
        report_to=wandb_report_to(params.wandb),
        run_name=params.wandb.name or ctx.name,
        seed=params.seed,
        data_seed=params.seed,
        dataset_num_proc=None,
    )


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


def cli_context(
    data: Path, base: str, out: Path, overrides: Sequence[str], chat_template: str | None, seed: int
) -> StepContext[TrainParams]:
    """A step context from the command line: ``train.*`` overrides are checked against TrainConfig."""
    from omegaconf import OmegaConf

    dotlist = [o.removeprefix("train.") for o in overrides]
    merged = OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.from_dotlist(dotlist))
    cfg = OmegaConf.to_object(merged)
    assert isinstance(cfg, TrainConfig)
    model = ModelConfig(name_or_path=base, chat_template=chat_template)
    wandb = WandbRun(
        mode=os.environ.get("WANDB_MODE", "disabled"), project="sca", entity=None, group="", name="", dir=""
    )
    params = TrainParams(cfg, model, seed, DEFAULT_CACHE, wandb)
    return StepContext(name="train", out=out, inputs={"data": data}, params=params)


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
