"""Backend name -> factory, with no import back into this module from the backends (no cycle).

Imports are lazy: vLLM and torch take seconds to import and a step needs only one backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from sca.config import BackendConfig
from sca.llm.contract import Backend, LLMParams, ModelSpec, model_spec

Factory = Callable[[ModelSpec, BackendConfig], Backend]


def _vllm(spec: ModelSpec, rt: BackendConfig) -> Backend:
    from sca.llm.vllm_backend import open_vllm

    return open_vllm(spec, rt)


def _openai(spec: ModelSpec, rt: BackendConfig) -> Backend:
    from sca.llm.openai_backend import OpenAIBackend

    return OpenAIBackend(spec, rt)


def _hf(spec: ModelSpec, rt: BackendConfig) -> Backend:
    from sca.llm.hf_backend import HFBackend

    return HFBackend(spec, rt)


BACKENDS: dict[str, Factory] = {"vllm": _vllm, "openai": _openai, "hf": _hf}


def open_backend(llm: LLMParams, inputs: Mapping[str, Path]) -> Backend:
    """The backend ``llm.backend.name`` names, loaded with the model ``llm`` resolves to."""
    spec = model_spec(llm, inputs)
    return BACKENDS[llm.backend.name](spec, llm.backend)
