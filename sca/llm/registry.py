"""Backend name -> factory, with no import back into this module from the backends (no cycle).

Imports are lazy: vLLM and torch take seconds to import and a step needs only one backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sca.llm.contract import Backend, ModelSpec, model_spec

Factory = Callable[[ModelSpec, Mapping[str, Any]], Backend]


def _vllm(spec: ModelSpec, rt: Mapping[str, Any]) -> Backend:
    from sca.llm.vllm_backend import open_vllm

    return open_vllm(spec, rt)


def _openai(spec: ModelSpec, rt: Mapping[str, Any]) -> Backend:
    from sca.llm.openai_backend import OpenAIBackend

    return OpenAIBackend(spec, rt)


def _hf(spec: ModelSpec, rt: Mapping[str, Any]) -> Backend:
    from sca.llm.hf_backend import HFBackend

    return HFBackend(spec, rt)


BACKENDS: dict[str, Factory] = {"vllm": _vllm, "openai": _openai, "hf": _hf}


def open_backend(llm: Mapping[str, Any], runtime: Mapping[str, Any], inputs: Mapping[str, Path]) -> Backend:
    """The backend a step's ``params["llm"]`` names, configured by ``runtime["backend"]`` (BackendConfig).

    ``llm = {"backend": "vllm"|"openai"|"hf", "model": {...}}``; ``runtime = {"backend": {...}, "cache": ...}``.
    """
    name = llm.get("backend")
    if name not in BACKENDS:
        raise ValueError(f"llm.backend={name!r} is not one of {sorted(BACKENDS)}")
    spec = model_spec(llm, runtime, inputs)
    return BACKENDS[name](spec, dict(runtime.get("backend", {})))
