"""The hf backend on the tiny model, the contract's error paths, and the data-parallel pool (on CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sca.config import BackendConfig, ConfigError
from sca.llm.contract import BackendError, Completion, LLMParams, Request, sample_seed
from sca.llm.registry import open_backend
from tests.helpers.params import llm_params

CHAT = [{"role": "user", "content": "Write a function that adds two numbers."}]


def llm(model_dir: Path, backend: str = "hf", max_model_len: int = 512, **backend_fields: int) -> LLMParams:
    return llm_params(model_dir, backend, max_model_len, **backend_fields)


def requests() -> list[Request]:
    return [
        Request(prompt="def add(a, b):", seed=1, n=3, temperature=1.0, max_tokens=12),
        Request(prompt=CHAT, seed=2, n=2, temperature=0.8, top_p=0.9, max_tokens=9, prefix="```python\n"),
        Request(prompt="import os\n", seed=3, n=1, temperature=0.0, max_tokens=7),
        Request(prompt="class Stack:", seed=4, n=2, temperature=1.2, max_tokens=16),
    ]


@pytest.fixture(scope="module")
def hf(tiny_model_dir: Path):
    backend = open_backend(llm(tiny_model_dir, batch_size=64), {})
    yield backend
    backend.close()


def test_hf_n_completions_with_reasons_and_counts(hf) -> None:
    reqs = requests()
    out = hf.generate(reqs)
    assert [len(c) for c in out] == [r.n for r in reqs]
    for r, completions in zip(reqs, out, strict=True):
        for c in completions:
            assert isinstance(c, Completion)
            assert c.finish_reason in ("stop", "length")
            assert c.prompt_tokens > 0
            assert 1 <= c.completion_tokens <= r.max_tokens
            if c.finish_reason == "length":
                assert c.completion_tokens == r.max_tokens
    # Sampled with temperature 1 from a random model: three samples of one prompt are not all equal.
    assert len({c.text for c in out[0]}) > 1
    # The chat prompt carries the ChatML template and the prefix: far more prompt tokens than the raw one.
    assert out[1][0].prompt_tokens > out[2][0].prompt_tokens


def test_hf_same_seeds_same_outputs_whatever_the_batch(hf, tiny_model_dir: Path) -> None:
    reqs = requests()
    whole = hf.generate(reqs)
    assert hf.generate(reqs) == whole  # fixed seeds: same outputs
    small = open_backend(llm(tiny_model_dir, batch_size=1), {})
    try:
        one_by_one = small.generate(reqs)
        reversed_ = small.generate(reqs[::-1])[::-1]
    finally:
        small.close()
    assert one_by_one == whole
    assert reversed_ == whole
    # A different seed changes sampled outputs.
    other = hf.generate([Request(prompt="def add(a, b):", seed=99, n=3, temperature=1.0, max_tokens=12)])
    assert [c.text for c in other[0]] != [c.text for c in whole[0]]


def test_hf_stop_strings_cut_the_text(hf) -> None:
    base = Request(prompt="def f(x):\n    return", seed=5, n=4, temperature=1.0, max_tokens=24)
    free = hf.generate([base])[0]
    # Stop at a string that the unconstrained samples produce: the output ends right before it.
    text = next(c.text for c in free if len(c.text) > 6)
    stop = text[3:6]
    cut = hf.generate([Request(**{**base.__dict__, "stop": (stop,)})])[0]
    hit = [c for c in cut if c.finish_reason == "stop" and c.completion_tokens < 24]
    assert hit, cut
    for c in cut:
        assert stop not in c.text
    same_sample = cut[free.index(next(c for c in free if c.text == text))]
    assert same_sample.text == text[: text.index(stop)]
    assert same_sample.finish_reason == "stop"


def test_too_long_prompt_is_a_length_completion(tiny_model_dir: Path) -> None:
    backend = open_backend(llm(tiny_model_dir, max_model_len=64), {})
    try:
        out = backend.generate(
            [Request(prompt="x = 1\n" * 100, seed=0, n=2), Request(prompt="y", seed=0, max_tokens=4)]
        )
    finally:
        backend.close()
    assert [c.text for c in out[0]] == ["", ""]
    assert {c.finish_reason for c in out[0]} == {"length"}
    assert out[0][0].prompt_tokens >= 64 and out[0][0].completion_tokens == 0
    assert len(out[1]) == 1 and out[1][0].completion_tokens >= 1


def test_unknown_backend_is_a_clear_error(tiny_model_dir: Path) -> None:
    # The backend's name is part of its typed config: an unknown one fails where the config is built.
    with pytest.raises(ConfigError, match=r"generate.backend.name='llama' is not one of \['vllm', 'openai', 'hf'\]"):
        open_backend(llm(tiny_model_dir, backend="llama"), {})


@pytest.mark.parametrize("backend", ["hf", "vllm", "openai"])
def test_missing_model_dir_is_a_clear_error(tmp_path: Path, backend: str) -> None:
    with pytest.raises(FileNotFoundError, match=r"llm.model.name_or_path=.*does not exist"):
        open_backend(llm(tmp_path / "nope", backend=backend), {})


def test_dir_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"llm.model .*cannot load a tokenizer"):
        open_backend(llm(tmp_path), {})


def test_bad_request_is_a_clear_error(hf) -> None:
    with pytest.raises(ValueError, match=r"request 0: n=0"):
        hf.generate([Request(prompt="x", seed=0, n=0)])


def test_sample_seeds_are_stable_and_distinct() -> None:
    assert sample_seed(7, 0) == 7
    seeds = {sample_seed(7, k) for k in range(100)}
    assert len(seeds) == 100 and all(0 <= s < 2**63 for s in seeds)
    assert sample_seed(7, 3) == sample_seed(7, 3)


@pytest.mark.slow  # two spawned processes importing torch: ~30-60 s
def test_data_parallel_pool_splits_and_merges_in_order(tiny_model_dir: Path, hf) -> None:
    from sca.llm.contract import model_spec
    from sca.llm.hf_backend import HFBackend
    from sca.llm.parallel import DataParallel

    spec = model_spec(llm(tiny_model_dir), {})
    pool = DataParallel("hf", HFBackend, spec, BackendConfig(name="hf", batch_size=64), ["", ""])
    try:
        reqs = requests() + requests()[:1]
        assert pool.generate(reqs) == hf.generate(reqs)
        with pytest.raises(BackendError, match=r"(?s)engine 0:.*request 0: n=0"):
            pool.generate([Request(prompt="x", seed=0, n=0), Request(prompt="y", seed=0)])
    finally:
        pool.close()


@pytest.mark.slow
def test_data_parallel_engine_that_fails_to_start(tmp_path: Path) -> None:
    from sca.llm.contract import ModelSpec
    from sca.llm.hf_backend import HFBackend
    from sca.llm.parallel import DataParallel

    spec = ModelSpec(str(tmp_path), "broken", None, "auto", 512, None)
    with pytest.raises(BackendError, match=r"hf engine 0 .*failed to start"):
        DataParallel("hf", HFBackend, spec, BackendConfig(name="hf"), [""])
