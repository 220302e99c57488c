"""Shared fixtures: offline environment, a tiny model built at test time, the benchmark files."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SCA_SHARED_DATA", ROOT.parent / "shared" / "data"))
BENCHMARKS = SHARED_DATA / "benchmarks"
REFERENCE = SHARED_DATA / "reference"
HUMANEVAL_PLUS = BENCHMARKS / "HumanEvalPlus-v0.1.10.jsonl.gz"
MBPP_PLUS = BENCHMARKS / "MbppPlus-v0.2.0.jsonl.gz"
# Converted models outlive one pytest session: building SmolLM2 takes ~25 s.
TEST_CACHE = Path(os.environ.get("SCA_TEST_CACHE", Path.home() / ".cache" / "sca-tests"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """A 2-layer random Qwen2 (head size 32) with a BPE tokenizer trained on the stdlib and a ChatML template."""
    from sca.tools.make_tiny_model import make_tiny_model

    return make_tiny_model(TEST_CACHE / "models" / "tiny-qwen2")


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The embedded SmolLM2-135M-Instruct, converted once into TEST_CACHE."""
    from sca.models import EMBEDDED, resolve_model

    return Path(resolve_model(EMBEDDED, TEST_CACHE))


@pytest.fixture(scope="session")
def humaneval_plus_path() -> Path:
    if not HUMANEVAL_PLUS.exists():
        pytest.fail(f"{HUMANEVAL_PLUS} not found: set SCA_SHARED_DATA to the folder holding benchmarks/")
    return HUMANEVAL_PLUS


@pytest.fixture(scope="session")
def mbpp_plus_path() -> Path:
    if not MBPP_PLUS.exists():
        pytest.fail(f"{MBPP_PLUS} not found: set SCA_SHARED_DATA to the folder holding benchmarks/")
    return MBPP_PLUS


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A scripted OpenAI-compatible server on loopback (tests/helpers/scripted_server.py)."""
    from tests.helpers.scripted_server import serve

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = serve(port, "scripted")
    yield f"http://127.0.0.1:{port}/v1"
    server.shutdown()
