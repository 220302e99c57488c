"""SFT examples -> the exact token ids and loss labels the trainer sees (the one chat-template contract).

The prompt is rendered with :func:`sca.models.render_prompt`, the function generation and evaluation
use, so the model is trained on the very text it is prompted with later. The completion is what the
chat template writes after that prompt, cut right after the first EOS: the loss falls on the response
and its EOS and on nothing else (the method's SFT format, docs/training.md), not on a template's trailing newline. Prompt and
completion are tokenized separately, like the paper does, so the prompt ids equal the ids an engine
gets from the rendered prompt text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sca.models import render_prompt
from sca.records import SFTExample

IGNORE = -100


@dataclass(frozen=True)
class Rendered:
    prompt: str
    """The rendered prompt, exactly as generation/eval render it (ends with the assistant header)."""
    completion: str
    """Response text, then the template's end of turn up to and including EOS."""


def render_example(tokenizer: Any, example: SFTExample) -> Rendered:
    """Split the chat rendering of one example into its prompt text and its supervised completion text."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "the tokenizer has no chat template: set model.chat_template to a Jinja file (e.g. sca/templates/chatml.jinja)"
        )
    eos = tokenizer.eos_token
    if not eos:
        raise ValueError("the tokenizer has no eos_token: SFT needs it to end every completion")
    prompt = render_prompt(tokenizer, list(example.prompt))
    full: str = tokenizer.apply_chat_template(list(example.prompt) + list(example.completion), tokenize=False)
    if not full.startswith(prompt):
        raise ValueError(
            f"example {example.id}: the chat template renders the prompt differently alone than followed by the "
            f"answer, so training text and inference text would differ.\nprompt alone: {prompt[-200:]!r}\n"
            f"with answer:  {full[: len(prompt)][-200:]!r}\nFix the template (model.chat_template)."
        )
    tail = full[len(prompt) :]
    cut = tail.find(eos)
    # A template whose end-of-turn token is not EOS: supervise EOS after the turn, as the paper appends it.
    completion = tail[: cut + len(eos)] if cut >= 0 else tail.rstrip("\n") + eos
    return Rendered(prompt=prompt, completion=completion)


def _adds_bos(tokenizer: Any) -> bool:
    bos = tokenizer.bos_token_id
    return bos is not None and bos in tokenizer("", add_special_tokens=True)["input_ids"]


def tokenize_examples(
    tokenizer: Any, examples: Sequence[SFTExample], max_length: int
) -> tuple[list[dict[str, list[int]]], Counter[str]]:
    """Token ids and labels (prompt = -100) per example, cut to ``max_length``; counters of what happened."""
    rendered = [render_example(tokenizer, e) for e in examples]
    prompts = tokenizer([r.prompt for r in rendered], add_special_tokens=False)["input_ids"]
    completions = tokenizer([r.completion for r in rendered], add_special_tokens=False)["input_ids"]
    bos = [tokenizer.bos_token_id] if _adds_bos(tokenizer) else []
    rows: list[dict[str, list[int]]] = []
    counts: Counter[str] = Counter(examples=len(examples))
    for p, c in zip(prompts, completions, strict=True):
        p = bos + p if bos and (not p or p[0] != bos[0]) else p
        ids, labels = p + c, [IGNORE] * len(p) + c
        if len(ids) > max_length:
            counts["truncated"] += 1
            ids, labels = ids[:max_length], labels[:max_length]
        if all(label == IGNORE for label in labels):
            counts["dropped_prompt_too_long"] += 1
            continue
        rows.append({"input_ids": ids, "labels": labels})
    counts["train_examples"] = len(rows)
    return rows, counts
