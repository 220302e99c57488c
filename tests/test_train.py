"""SFT on the tiny model: the chat-template contract, the loss mask, LoRA / full FT, packing, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import TrainerCallback

from sca.config import TrainConfig
from sca.io import SUCCESS
from sca.models import render_prompt
from sca.records import SFTExample, make_id, to_json
from sca.step import StepContext
from sca.train import sft
from sca.train.common import deepspeed_file, grad_accum, last_checkpoint, use_bf16
from sca.train.data import IGNORE, render_example, tokenize_examples
from sca.train.sft import TrainParams, build_trainer, cli_context, run
from tests.helpers.params import train_params

SYSTEM = "You write short, correct Python."


def example(i: int) -> SFTExample:
    """A fixed, learnable task family: the answer follows from the instruction."""
    instruction = f"Write a function add_{i} that returns its argument plus {i}."
    response = f"```python\ndef add_{i}(x):\n    return x + {i}\n```"
    return SFTExample(
        id=make_id("sft", str(i)),
        parent_id=make_id("resp", str(i)),
        prompt=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": instruction}],
        completion=[{"role": "assistant", "content": response}],
    )


def make_sft_dir(path: Path, n: int) -> Path:
    """A finished sft_data step directory with ``n`` examples."""
    path.mkdir(parents=True, exist_ok=True)
    records = sorted((example(i) for i in range(n)), key=lambda r: r.id)
    (path / "records.jsonl").write_text("".join(to_json(r) + "\n" for r in records))
    (path / SUCCESS).write_text("ok\n")
    return path


def make_ctx(
    out: Path, data: Path, base: Path, chat_template: str | None = None, **overrides: Any
) -> StepContext[TrainParams]:
    """The context the pipeline would give the train step, with TrainConfig fields overridden."""
    params = train_params(base, str(out / "cache"), TrainConfig(**overrides), chat_template)
    return StepContext(name="r0/train", out=out, inputs={"data": data}, params=params)


TEMPLATE = Path(__file__).resolve().parent.parent / "sca" / "templates" / "chatml.jinja"
# Small batches of short sequences: every default test stays within seconds on two shared cores.
FAST = {
    "global_batch_size": 2,
    "per_device_batch_size": 2,
    "max_length": 128,
    "learning_rate": 3e-3,
    "save_steps": 1000,
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sft_dir(tmp_path_factory.mktemp("sft_data"), 16)


def _show(tokenizer: Any, ids: list[int], labels: list[int]) -> str:
    """Token by token, which ones carry loss: printed when the mask check fails."""
    rows = [
        f"{'LOSS' if lab != IGNORE else '    '} {tokenizer.decode([i])!r}" for i, lab in zip(ids, labels, strict=True)
    ]
    return "\n".join(rows)


def test_one_chat_template_for_sft_generation_and_eval(tmp_path: Path, data_dir: Path, tiny_model_dir: Path) -> None:
    ctx = make_ctx(tmp_path, data_dir, tiny_model_dir, chat_template=str(TEMPLATE), **FAST)
    trainer, tokenizer, _ = build_trainer(ctx)
    record = ctx.read("data", SFTExample)[0]
    response = record.completion[0]["content"]

    # What TRL trains on: the prepared row, through the trainer's own collator.
    row = trainer.train_dataset[0]
    batch = trainer.data_collator([row])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    sft_text = tokenizer.decode(ids)

    generation_text = render_prompt(tokenizer, record.prompt) + response + tokenizer.eos_token
    prefix = "```python\n"
    assert response.startswith(prefix)
    eval_text = render_prompt(tokenizer, record.prompt, prefix=prefix) + response[len(prefix) :] + tokenizer.eos_token
    assert sft_text == generation_text == eval_text, f"SFT:\n{sft_text}\n---\ngeneration:\n{generation_text}"

    supervised = [i for i, lab in zip(ids, labels, strict=True) if lab != IGNORE]
    assert tokenizer.decode(supervised) == response + tokenizer.eos_token, _show(tokenizer, ids, labels)
    assert supervised[-1] == tokenizer.eos_token_id, _show(tokenizer, ids, labels)
    n_prompt = len(tokenizer(render_prompt(tokenizer, record.prompt), add_special_tokens=False)["input_ids"])
    assert all(lab == IGNORE for lab in labels[:n_prompt]), _show(tokenizer, ids, labels)
    assert all(lab != IGNORE for lab in labels[n_prompt:]), _show(tokenizer, ids, labels)


def test_lora_trains_merges_and_saves_the_template(tmp_path: Path, data_dir: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    from sca.models import load_tokenizer

    ctx = make_ctx(tmp_path, data_dir, tiny_model_dir, method="lora", max_steps=10, **{**FAST, "learning_rate": 1e-2})
    stats = run(ctx)
    assert stats["steps"] == 10 and stats["grad_accum"] == 1 and stats["world_size"] == 1
    assert stats["loss_last"] < stats["loss_first"] - 0.2, stats
    assert stats["examples"] == stats["train_examples"] == 16
    assert 0 < stats["supervised_tokens"] < stats["tokens"] <= stats["slots"]
    model_dir = tmp_path / "model"
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    assert not (model_dir / "adapter_config.json").exists(), "merged: a plain checkpoint"
    merged = AutoModelForCausalLM.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    changed = [n for n, p in merged.state_dict().items() if not torch.equal(p, base.state_dict()[n])]
    assert any("q_proj" in n for n in changed), "LoRA deltas were merged into the weights"
    saved = load_tokenizer(str(model_dir))
    assert saved.chat_template == load_tokenizer(str(tiny_model_dir)).chat_template


def test_full_finetuning_loss_decreases_over_30_steps(tmp_path: Path, data_dir: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    stats = run(make_ctx(tmp_path, data_dir, tiny_model_dir, method="full", max_steps=30, **FAST))
    assert stats["steps"] == 30
    assert stats["loss_last"] < stats["loss_first"] - 1.0, stats
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert model.config.attention_dropout == 0.0
    assert (tmp_path / "checkpoints").is_dir()


def test_packing_has_no_attention_across_examples(tmp_path: Path, data_dir: Path, tiny_model_dir: Path) -> None:
    ctx = make_ctx(tmp_path, data_dir, tiny_model_dir, packing=True, **{**FAST, "max_length": 1024})
    trainer, _, _ = build_trainer(ctx)
    row = trainer.train_dataset[0]
    assert len(row["seq_lengths"]) >= 2, "several examples share a packed row"
    batch = trainer.data_collator([row])
    assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1
    model = trainer.model.eval()
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        start = 0
        for n in row["seq_lengths"]:
            alone = model(input_ids=batch["input_ids"][:, start : start + n]).logits[0]
            torch.testing.assert_close(packed[start : start + n], alone, atol=1e-4, rtol=1e-4)
            start += n


def test_padding_ratio_is_reported_and_packing_removes_it(tmp_path: Path, data_dir: Path, tiny_model_dir: Path) -> None:
    common = {**FAST, "max_steps": 2, "method": "lora"}
    padded = run(make_ctx(tmp_path / "padded", data_dir, tiny_model_dir, **common))
    packed = run(make_ctx(tmp_path / "packed", data_dir, tiny_model_dir, packing=True, **common))
    assert padded["padding_ratio"] > 0, "examples of different lengths in one batch are padded"
    assert packed["padding_ratio"] == 0.0


class _KillAt(TrainerCallback):
    """Stands in for a killed job: the process dies right after step ``at``, after checkpoint ``at - 1``."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.at:
            raise KeyboardInterrupt(f"killed at step {self.at}")


def test_resume_after_a_kill_continues_from_the_last_checkpoint(
    tmp_path: Path, data_dir: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import load_file

    common = {**FAST, "method": "full", "max_steps": 6, "save_steps": 2}
    straight = run(make_ctx(tmp_path / "straight", data_dir, tiny_model_dir, **common))

    ctx = make_ctx(tmp_path / "killed", data_dir, tiny_model_dir, **common)
    real_build = sft.build_trainer

    def build_and_arm(c: StepContext) -> Any:
        trainer, tok, counts = real_build(c)
        trainer.add_callback(_KillAt(5))
        return trainer, tok, counts

    monkeypatch.setattr(sft, "build_trainer", build_and_arm)
    with pytest.raises(KeyboardInterrupt):
        run(ctx)
    monkeypatch.setattr(sft, "build_trainer", real_build)
    assert sorted(p.name for p in (ctx.out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert not (ctx.out / "model").exists()

    resumed = run(ctx)
    assert resumed["resumed_from_step"] == 4 and resumed["steps"] == 6
    assert resumed["micro_batches"] <= 3, "only the steps after the checkpoint were run again (+1 look-ahead)"
    a = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    b = load_file(ctx.out / "model" / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")
    assert straight["steps"] == 6


def test_global_batch_is_kept_when_the_world_size_changes() -> None:
    assert grad_accum(64, 1, 1) == 64
    assert grad_accum(64, 1, 8) == 8
    assert grad_accum(64, 4, 2) == 8
    with pytest.raises(ValueError, match=r"train.global_batch_size=64 .* per_device_batch_size \(3\)"):
        grad_accum(64, 3, 2)


def test_template_without_eos_or_prefix_fails_clearly(tmp_path: Path, tiny_model_dir: Path) -> None:
    from sca.models import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="model.chat_template"):
        render_example(tokenizer, example(0))
    # A template that renders the generation prompt differently from a finished turn.
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant:\n{% endif %}"
    )
    with pytest.raises(ValueError, match="renders the prompt differently"):
        render_example(tokenizer, example(0))


def test_end_of_turn_that_is_not_eos_gets_eos_appended(tiny_model_dir: Path) -> None:
    from sca.models import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|endoftext|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    rendered = render_example(tokenizer, example(3))
    assert rendered.completion == example(3).completion[0]["content"] + "<|endoftext|>" + tokenizer.eos_token


def test_prompts_longer_than_max_length_are_counted_not_trained(tiny_model_dir: Path) -> None:
    from sca.models import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    rows, counts = tokenize_examples(tokenizer, [example(i) for i in range(4)], max_length=20)
    assert rows == [] and counts["dropped_prompt_too_long"] == 4 and counts["truncated"] == 4
    rows, counts = tokenize_examples(tokenizer, [example(i) for i in range(4)], max_length=4096)
    assert len(rows) == 4 and counts["truncated"] == 0


def test_bad_inputs_name_the_field(tmp_path: Path, data_dir: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train.deepspeed='conf/deepspeed/nope.json'"):
        deepspeed_file("conf/deepspeed/nope.json")
    with pytest.raises(ValueError, match="train.bf16='maybe'"):
        use_bf16("maybe")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    with pytest.raises(FileNotFoundError, match="_SUCCESS"):
        build_trainer(make_ctx(tmp_path / "o", unfinished, tiny_model_dir, **FAST))
    empty = make_sft_dir(tmp_path / "empty", 0)
    with pytest.raises(ValueError, match="no SFT examples"):
        build_trainer(make_ctx(tmp_path / "o", empty, tiny_model_dir, **FAST))
    with pytest.raises(ValueError, match="raise train.max_length"):
        build_trainer(make_ctx(tmp_path / "o", data_dir, tiny_model_dir, **{**FAST, "max_length": 10}))


def test_cli_overrides_are_checked_against_the_schema(tmp_path: Path, data_dir: Path) -> None:
    ctx = cli_context(data_dir, "base", tmp_path, ["train.method=full", "max_steps=7", "train.lora.r=4"], None, 1)
    assert ctx.params.train.method == "full" and ctx.params.train.max_steps == 7
    assert ctx.params.train.lora.r == 4 and ctx.params.seed == 1
    assert ctx.params.train.per_device_batch_size == 1
    with pytest.raises(Exception, match="no_such_key"):
        cli_context(data_dir, "base", tmp_path, ["train.no_such_key=1"], None, 0)
    with pytest.raises(Exception, match="train.method"):
        cli_context(data_dir, "base", tmp_path, ["train.method=qlora"], None, 0)


def test_a_checkpoint_cut_short_by_a_kill_is_not_resumed_from(tmp_path: Path) -> None:
    ckpts = tmp_path / "checkpoints"
    for step, state in ((2, {"global_step": 2}), (4, {"global_step": 4}), (6, None)):
        (ckpts / f"checkpoint-{step}").mkdir(parents=True)
        if state is not None:
            (ckpts / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps(state))
    (ckpts / "checkpoint-8").mkdir()
    (ckpts / "checkpoint-8" / "trainer_state.json").write_text('{"global_st')  # torn write
    assert last_checkpoint(ckpts) == ckpts / "checkpoint-4"
    assert sorted(p.name for p in ckpts.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert last_checkpoint(tmp_path / "none") is None


def test_launch_scripts_parse_and_use_the_train_entry() -> None:
    import subprocess

    root = Path(__file__).resolve().parent.parent
    for name in ("train.sh", "train.sbatch"):
        script = root / "launch" / name
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, name
        assert "-m sca.train.sft" in script.read_text()
    assert "--rdzv_backend=c10d" in (root / "launch" / "train.sbatch").read_text()
