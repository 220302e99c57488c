"""The trusted supervisor: holds the data (and any secrets), never runs candidate code.

It starts one warm worker per core with an allow-listed environment (in tier A inside fresh
namespaces), hands programs out, judges what the workers observed, restarts workers that die and
retries infrastructure failures, which are never reported as a sample's failure.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import secrets
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sca.config import SandboxConfig
from sca.sandbox import tiers, worker
from sca.sandbox.verdicts import BenchOutcome, InfraError, Outcome, judge_bench, judge_filter

log = logging.getLogger(__name__)
T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
# Nothing else from the supervisor's environment (tokens, API keys, proxies) reaches a worker.
ALLOWED_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TZ": "UTC",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "HOME": "/nonexistent",
}
BOOT = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from sca.sandbox.worker import main; main()"
GRACE_S = 10.0  # the worker enforces the deadline; this only catches a wedged worker


@dataclass(frozen=True)
class BenchTask:
    code: str
    entry_point: str
    inputs: list[Any]
    expected: list[Any]  # stays in this process
    atol: float = 0.0
    timeout_s: float | None = None  # overrides the config's limit for this task


class Worker:
    """One warm worker process and its pipes."""

    def __init__(self, probe: tiers.Probe, layers: Sequence[str], disk_mb: int, scratch: str) -> None:
        opts = {"layers": list(layers), "namespaces": probe.namespaces, "disk_mb": disk_mb, "scratch": scratch}
        cmd = [sys.executable, "-I", "-c", BOOT, json.dumps(opts)]
        if probe.namespaces:
            cmd = [shutil.which("unshare") or "unshare", *tiers.UNSHARE, *cmd]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=ALLOWED_ENV, cwd="/", start_new_session=True
        )
        self._buf = bytearray()
        hello = self._recv(timeout=60)
        if not hello.get("ready"):
            raise InfraError(f"sandbox worker did not start: {hello}")

    def _recv(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd, deadline = self.proc.stdout.fileno(), time.monotonic() + timeout
        while True:
            if len(self._buf) >= 4:
                (n,) = struct.unpack("<I", self._buf[:4])
                if len(self._buf) >= 4 + n:
                    msg: dict[str, Any] = json.loads(self._buf[4 : 4 + n])
                    del self._buf[: 4 + n]
                    return msg
            left = deadline - time.monotonic()
            ready = select.select([fd], [], [], max(left, 0))[0] if left > 0 else []
            chunk = os.read(fd, 1 << 20) if ready else b""
            if not chunk:
                self.close()
                why = "hung" if not ready else "died"
                raise InfraError(f"sandbox worker {self.proc.pid} {why} (exit {self.proc.poll()})")
            self._buf += chunk

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            worker.send(self.proc.stdin, job)
        except (BrokenPipeError, OSError) as e:
            self.close()
            raise InfraError(f"sandbox worker {self.proc.pid} is gone: {e}") from e
        return self._recv(timeout=job["timeout"] + GRACE_S)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()  # unshare --kill-child takes the whole namespace down with it
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class Sandbox:
    """A pool of warm workers. ``with Sandbox(cfg) as sb: sb.run_filter(programs)``."""

    def __init__(self, config: SandboxConfig | None = None, layers: Sequence[str] | None = None) -> None:
        self.config = config or SandboxConfig()
        self.probe = tiers.require(self.config.min_tier)
        self.layers = tuple(self.probe.layers if layers is None else layers)  # layers: for the benchmark only
        self.tier = self.probe.tier
        n = self.config.workers or os.cpu_count() or 1
        self._idle: queue.Queue[Worker | None] = queue.Queue()
        self._lock = threading.Lock()
        self._workers: list[Worker] = []
        # Tier A mounts each worker's private tmpfs here (inside its own mount namespace), an empty
        # directory of our own: a tmpfs over /tmp would hide an interpreter or venv living there.
        self._scratch = tempfile.mkdtemp(prefix="sca-scratch-") if self.probe.namespaces else ""
        for _ in range(n):
            self._idle.put(self._spawn())
        log.info("sandbox: %d workers, %s", n, self.probe.describe())

    def _spawn(self) -> Worker:
        w = Worker(self.probe, self.layers, self.config.disk_mb, self._scratch)
        with self._lock:
            self._workers.append(w)
        return w

    def close(self) -> None:
        with self._lock:
            workers, self._workers = self._workers, []
        for w in workers:
            w.close()
        if self._scratch:
            with contextlib.suppress(OSError):
                os.rmdir(self._scratch)  # empty on the host: the tmpfs lived in the workers' namespaces

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one job, with infra retries ----------------------------------------------------------------
    def _job(self, job: dict[str, Any]) -> dict[str, Any]:
        c = self.config
        base = {"memory_mb": c.memory_mb, "max_output": c.max_output_bytes, "fsize_mb": c.max_file_mb}
        return {**base, "nofile": c.max_open_files, "disk_mb": c.disk_mb, "nonce": secrets.token_hex(16), **job}

    def _observe(self, job: dict[str, Any]) -> dict[str, Any]:
        w = self._idle.get()
        assert w is not None
        try:
            obs = w.run(job)
        except InfraError:
            with self._lock:
                if w in self._workers:
                    self._workers.remove(w)
            try:
                self._idle.put(self._spawn())  # a fresh worker replaces the dead one
            except Exception as e:
                # Not an InfraError: a retry would wait forever for a worker that will never come back.
                raise tiers.SandboxUnavailable(f"a sandbox worker died and a new one could not be started: {e}") from e
            raise
        self._idle.put(w)
        return obs

    def _with_retries(self, fn: Callable[[], T]) -> T | None:
        last: InfraError | None = None
        for _ in range(1 + self.config.infra_retries):
            try:
                return fn()
            except InfraError as e:
                last = e
                log.warning("sandbox infrastructure failure, retrying: %s", e)
        log.error("sandbox infrastructure failure persisted: %s", last)
        return None

    def _filter_one(self, code: str) -> Outcome:
        timeout = self.config.timeout_s

        def attempt() -> Outcome:
            job = self._job({"mode": "filter", "code": code, "timeout": timeout})
            return judge_filter(self._observe(job), job["nonce"], timeout, self.tier)

        out = self._with_retries(attempt)
        for _ in range(self.config.rerun_timeouts):
            if out is None or out.verdict != "timeout":
                break
            out = self._with_retries(attempt)  # a loaded machine must not turn a slow pass into a timeout
        return out or Outcome("infra", "SandboxFailure", 0.0, self.tier, "sandbox failed repeatedly")

    def _bench_one(self, task: BenchTask) -> BenchOutcome:
        timeout = task.timeout_s or self.config.timeout_s

        def attempt() -> BenchOutcome:
            job = self._job(
                {"mode": "bench", "code": task.code, "entry_point": task.entry_point, "inputs": task.inputs}
            )
            job["timeout"] = timeout
            return judge_bench(self._observe(job), job["nonce"], timeout, self.tier, task.expected, task.atol)

        out = self._with_retries(attempt)
        for _ in range(self.config.rerun_timeouts):
            if out is None or "timeout" not in out.per_input:
                break
            out = self._with_retries(attempt)
        return out or BenchOutcome("infra", ["infra"] * len(task.inputs), 0.0, self.tier, "sandbox failed repeatedly")

    # --- many jobs, in order -------------------------------------------------------------------------
    def _map(self, fn: Callable[[Any], T], items: Sequence[Any], on_done: Callable[[], None] | None) -> list[T]:
        results: list[T | None] = [None] * len(items)
        todo: queue.Queue[int] = queue.Queue()
        for i in range(len(items)):
            todo.put(i)
        errors: list[BaseException] = []

        def lane() -> None:
            while not errors:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    results[i] = fn(items[i])
                except BaseException as e:  # surfaced below, in the caller's thread
                    errors.append(e)
                    return
                if on_done is not None:
                    on_done()

        lanes = [threading.Thread(target=lane, daemon=True) for _ in range(max(1, len(self._workers)))]
        for t in lanes:
            t.start()
        for t in lanes:
            t.join()
        if errors:
            raise errors[0]
        return [r for r in results if r is not None]

    def run_filter(self, programs: Sequence[str], on_done: Callable[[], None] | None = None) -> list[Outcome]:
        """SelfCodeAlign filter mode: one Outcome per program, in order."""
        return self._map(self._filter_one, programs, on_done)

    def run_benchmark(
        self, tasks: Sequence[BenchTask], on_done: Callable[[], None] | None = None
    ) -> list[BenchOutcome]:
        """EvalPlus mode: outputs computed in the sandbox, compared here with the expected ones."""
        return self._map(self._bench_one, tasks, on_done)


def execute_programs(programs: Sequence[str], config: SandboxConfig | None = None) -> list[Outcome]:
    """Filter-mode verdicts for ``programs`` (order preserved), with a pool started and stopped here."""
    with Sandbox(config) as sb:
        return sb.run_filter(programs)


def iter_chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
