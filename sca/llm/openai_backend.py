"""The ``openai`` backend: any OpenAI-compatible server (vLLM serve, SGLang, TGI), over async httpx.

Choices, and why:
- Chat prompts are rendered here with the local tokenizer and its configured chat template and sent to
  ``/v1/completions``: the server's own template may differ from the experiment's ``chat_template``, and
  the model must see exactly the text SFT trains on (the one template contract); ``prefix`` also needs raw
  text. Only when no tokenizer can be loaded (a model that exists only on the server) do chat prompts go to
  ``/v1/chat/completions``.
- Each of a request's n samples is its own HTTP call with n=1 and seed ``sample_seed(seed, i)``: the
  server's ``usage`` then gives exact per-completion token counts, servers without n>1 (TGI) work, and a
  retry repeats one sample, not n.
- Connection errors, 429 and 5xx are retried with exponential backoff (``retries`` times); after that the
  call raises :class:`BackendError` naming the server. Whatever the stage committed before stays in its
  journal, and the re-run resumes from there.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from typing import Any

import httpx

from sca.config import BackendConfig
from sca.llm.contract import (
    BackendError,
    Completion,
    ModelSpec,
    Request,
    check_requests,
    encode,
    render,
    sample_seed,
    too_long,
)

log = logging.getLogger(__name__)
BACKOFF_S = 0.5
TIMEOUT = httpx.Timeout(600.0, connect=10.0)


class OpenAIBackend:
    def __init__(self, spec: ModelSpec, backend: BackendConfig) -> None:
        self.spec = spec
        self.base_url = backend.base_url.rstrip("/")
        self.max_concurrency = backend.max_concurrency
        self.retries = backend.retries
        key = os.environ.get(backend.api_key_env, "EMPTY")
        self.headers = {"Authorization": f"Bearer {key}"}
        try:
            self.tokenizer: Any = spec.tokenizer()
        except BackendError as e:
            log.warning("no local tokenizer (%s): chat prompts use the server's chat template", e)
            self.tokenizer = None
        self.model, self.max_model_len = asyncio.run(self._served_model())

    async def _served_model(self) -> tuple[str, int]:
        """The served model's name (ours if served, else the only one) and its context length."""
        async with httpx.AsyncClient(timeout=TIMEOUT, headers=self.headers) as client:
            body = await self._call(client, "GET", "/models", None)
        served = {m["id"]: m for m in body.get("data", [])}
        for name in (self.spec.name, self.spec.path):
            if name in served:
                break
        else:
            if len(served) != 1:
                raise BackendError(
                    f"server {self.base_url} serves {sorted(served)}; none is llm.model {self.spec.name!r}"
                )
            name = next(iter(served))
        return name, int(served[name].get("max_model_len") or self.spec.max_model_len)

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        check_requests(requests)
        return asyncio.run(self._generate(requests))

    async def _generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        results: list[list[Completion | None]] = [[None] * r.n for r in requests]
        limit = asyncio.Semaphore(self.max_concurrency)
        limits = httpx.Limits(max_connections=self.max_concurrency)
        async with httpx.AsyncClient(timeout=TIMEOUT, headers=self.headers, limits=limits) as client:

            async def one(i: int, k: int, body: dict[str, Any], chat: bool) -> None:
                async with limit:
                    results[i][k] = await self._sample(client, body, chat)

            try:
                async with asyncio.TaskGroup() as tasks:
                    for i, r in enumerate(requests):
                        prepared = self._prepare(r)
                        if isinstance(prepared, list):
                            results[i] = list(prepared)
                            continue
                        body, chat = prepared
                        for k in range(r.n):
                            tasks.create_task(one(i, k, {**body, "seed": sample_seed(r.seed, k)}, chat))
            except ExceptionGroup as group:  # the first failure cancels the rest; report that one
                raise group.exceptions[0] from None
        return [[c for c in row if c is not None] for row in results]

    def _prepare(self, r: Request) -> tuple[dict[str, Any], bool] | list[Completion]:
        """The request body (n=1), or the completions of a prompt too long for the context."""
        body: dict[str, Any] = {
            "model": self.model,
            "n": 1,
            "temperature": r.temperature,
            "top_p": r.top_p,
            "max_tokens": r.max_tokens,
        }
        if r.stop:
            body["stop"] = list(r.stop)
        if self.tokenizer is None and not isinstance(r.prompt, str):
            messages = list(r.prompt)
            if r.prefix:  # vLLM's extension for continuing a started answer
                messages.append({"role": "assistant", "content": r.prefix})
                body.update(continue_final_message=True, add_generation_prompt=False)
            return {**body, "messages": messages}, True
        if self.tokenizer is not None:
            n_prompt = len(encode(self.tokenizer, r))
            if n_prompt >= self.max_model_len:
                return too_long(n_prompt, r.n)
            body["max_tokens"] = min(r.max_tokens, self.max_model_len - n_prompt)
            return {**body, "prompt": render(self.tokenizer, r)}, False
        assert isinstance(r.prompt, str)
        body["max_tokens"] = min(r.max_tokens, self.max_model_len - 1)  # vLLM rejects more than the context
        return {**body, "prompt": r.prompt + r.prefix}, False

    async def _sample(self, client: httpx.AsyncClient, body: dict[str, Any], chat: bool) -> Completion:
        try:
            out = await self._call(client, "POST", "/chat/completions" if chat else "/completions", body)
        except _ContextTooLong:
            return Completion("", "length", 0, 0)
        choice = out["choices"][0]
        text = choice["message"]["content"] if chat else choice["text"]
        reason = choice.get("finish_reason")
        if reason not in ("stop", "length"):
            raise BackendError(f"server {self.base_url} finished a request with reason {reason!r}")
        usage = out.get("usage") or {}
        return Completion(
            text or "", reason, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        )

    async def _call(self, client: httpx.AsyncClient, method: str, path: str, body: Any) -> dict[str, Any]:
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(BACKOFF_S * 2 ** (attempt - 1))
            try:
                response = await client.request(method, self.base_url + path, json=body)
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
                continue
            if response.status_code == 429 or response.status_code >= 500:
                last = f"HTTP {response.status_code}: {response.text[:300]}"
                continue
            if response.status_code == 400 and "context length" in response.text.lower():
                raise _ContextTooLong(response.text)
            if response.status_code >= 400:
                raise BackendError(
                    f"{method} {self.base_url}{path}: HTTP {response.status_code}: {response.text[:500]}"
                )
            result: dict[str, Any] = response.json()
            return result
        raise BackendError(
            f"OpenAI-compatible server at {self.base_url} failed {self.retries + 1} times on {method} {path} "
            f"(last error: {last}). Is it running? Completions committed so far are kept; re-run to resume."
        )

    def close(self) -> None:
        pass


class _ContextTooLong(Exception):
    pass
