"""The ``hf`` backend: transformers ``generate``, batched with left padding, for tiny models and CPU runs.

Per-request seeds vs batching: ``generate(do_sample=True)`` draws every row from one global RNG, so a
sample would depend on its neighbours in the batch. Instead each row (request x sample) owns a
``torch.Generator`` seeded with ``sample_seed(request.seed, i)``, and :class:`_RowSampler` (a logits
processor) draws that row's token from it, then leaves a one-hot score that greedy decoding picks. A row's
random stream is therefore consumed by that row alone, in the same order whatever the batch holds. What
remains batch-dependent is float rounding of the logits across batch shapes, which can only flip a token
at an exact tie of probabilities; the tests check identical outputs for batch sizes 1 and 3.
Stop strings and per-row ``max_tokens`` are a per-row stopping criterion, so requests with different
stops share a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from sca.config import BackendConfig
from sca.llm.contract import BackendError, Completion, ModelSpec, Request, check_requests, encode, sample_seed, too_long


@dataclass
class _Row:
    request: int
    ids: list[int]
    temperature: float
    top_p: float
    max_tokens: int
    stop: tuple[str, ...]
    generator: torch.Generator


class _RowSampler(LogitsProcessor):
    """Samples each row with its own generator (temperature, top-p), or leaves it greedy at temperature 0."""

    def __init__(self, rows: Sequence[_Row]) -> None:
        self.rows = rows

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        out = scores.clone()
        for i, row in enumerate(self.rows):
            if row.temperature == 0:
                continue
            probs = torch.softmax(scores[i].float() / row.temperature, dim=-1)
            if row.top_p < 1:
                sorted_p, order = torch.sort(probs, descending=True)
                # Keep the smallest prefix whose mass reaches top_p (the token crossing it included).
                drop = torch.cumsum(sorted_p, 0) - sorted_p >= row.top_p
                sorted_p[drop] = 0
                probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
            token = torch.multinomial(probs, 1, generator=row.generator)
            out[i] = float("-inf")
            out[i, token] = 0
        return out  # type: ignore[return-value]


class _RowStop(StoppingCriteria):
    """Per-row stop: its own max_tokens and stop strings (EOS is handled by generate itself)."""

    def __init__(self, rows: Sequence[_Row], prompt_len: int, tokenizer: Any) -> None:
        self.rows, self.prompt_len, self.tokenizer = rows, prompt_len, tokenizer
        self.stopped_at: dict[int, int] = {}
        """Row -> tokens generated when it stopped; later positions are padding."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool)
        generated = input_ids.shape[1] - self.prompt_len
        for i, row in enumerate(self.rows):
            if i in self.stopped_at or generated >= row.max_tokens:
                done[i] = True
            elif row.stop:
                text = self.tokenizer.decode(input_ids[i, self.prompt_len :], skip_special_tokens=True)
                done[i] = any(s in text for s in row.stop)
            if done[i]:
                self.stopped_at.setdefault(i, generated)
        return done  # type: ignore[return-value]


class HFBackend:
    def __init__(self, spec: ModelSpec, backend: BackendConfig) -> None:
        self.spec = spec
        self.batch_size = backend.batch_size
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = spec.tokenizer()
        self.tokenizer.padding_side = "left"
        dtype: Any = "auto" if spec.dtype == "auto" and self.device == "cuda" else spec.dtype
        if dtype == "auto":  # CPU: half precision is slow or unsupported in many kernels
            dtype = torch.float32
        try:
            model: Any = AutoModelForCausalLM.from_pretrained(spec.path, revision=spec.revision, dtype=dtype)
        except (OSError, ValueError) as e:
            raise BackendError(f"llm.model {spec.name!r}: cannot load a model from {spec.path!r}: {e}") from e
        self.model: Any = model.to(self.device).eval()
        eos = self.model.generation_config.eos_token_id
        self.eos: set[int] = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            self.eos.add(self.tokenizer.eos_token_id)

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        check_requests(requests)
        results: list[list[Completion]] = [[] for _ in requests]
        rows: list[_Row] = []
        for i, r in enumerate(requests):
            ids = encode(self.tokenizer, r)
            if len(ids) >= self.spec.max_model_len:
                results[i] = too_long(len(ids), r.n)
                continue
            max_tokens = min(r.max_tokens, self.spec.max_model_len - len(ids))
            for k in range(r.n):
                gen = torch.Generator().manual_seed(sample_seed(r.seed, k))
                rows.append(_Row(i, ids, r.temperature, r.top_p, max_tokens, r.stop, gen))
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            for row, completion in zip(batch, self._generate_batch(batch), strict=True):
                results[row.request].append(completion)
        return results

    @torch.inference_mode()
    def _generate_batch(self, rows: Sequence[_Row]) -> list[Completion]:
        width = max(len(r.ids) for r in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(r.ids)) + r.ids for r in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(r.ids)) + [1] * len(r.ids) for r in rows], device=self.device)
        config = GenerationConfig(
            max_new_tokens=max(r.max_tokens for r in rows),
            do_sample=False,  # _RowSampler does the sampling
            num_beams=1,
            eos_token_id=sorted(self.eos),
            pad_token_id=pad,
        )
        stop = _RowStop(rows, width, self.tokenizer)
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            generation_config=config,
            logits_processor=LogitsProcessorList([_RowSampler(rows)]),
            stopping_criteria=StoppingCriteriaList([stop]),
        )
        return [
            self._completion(row, out[i, width : width + stop.stopped_at.get(i, row.max_tokens)].tolist())
            for i, row in enumerate(rows)
        ]

    def _completion(self, row: _Row, tokens: list[int]) -> Completion:
        eos_at = next((j for j, t in enumerate(tokens) if t in self.eos), None)
        if eos_at is not None:  # the EOS token counts, as in vLLM; rows after it are padding
            tokens = tokens[: eos_at + 1]
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        hits = [text.index(s) for s in row.stop if s in text]
        if hits:
            # Like vLLM: the text ends before the stop string; tokens are counted up to where it stopped.
            return Completion(text[: min(hits)], "stop", len(row.ids), len(tokens))
        reason = "stop" if eos_at is not None else "length"
        return Completion(text, reason, len(row.ids), len(tokens))

    def close(self) -> None:
        del self.model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
