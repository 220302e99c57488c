"""Data parallelism: one engine per GPU group, each in its own process, requests split and merged in order.

Each worker is a spawned process that sees only its GPUs (``CUDA_VISIBLE_DEVICES``), opens one
single-engine backend and serves ``generate`` calls over a pipe. Requests are split into contiguous,
equal-count chunks; per-request seeds make the results independent of the split.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from sca.config import BackendConfig
from sca.llm.contract import Backend, BackendError, Completion, ModelSpec, Request

# One engine's constructor: a module-level callable, so a spawned worker can unpickle it.
Engine = Callable[[ModelSpec, BackendConfig], Backend]

log = logging.getLogger(__name__)


def visible_devices() -> list[str]:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` if set (SLURM sets it), else all of torch's."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def gpu_groups(data_parallel: int, tensor_parallel: int, devices: Sequence[str] | None = None) -> list[str]:
    """``CUDA_VISIBLE_DEVICES`` of each engine: consecutive groups of ``tensor_parallel`` visible GPUs.

    ``data_parallel=0`` means as many engines as the visible GPUs hold (leftover GPUs stay idle, logged).
    """
    devices = visible_devices() if devices is None else list(devices)
    engines = data_parallel or len(devices) // tensor_parallel
    need = engines * tensor_parallel
    if engines < 1 or need > len(devices):
        raise ValueError(
            f"backend.data_parallel_size={data_parallel} x tensor_parallel_size={tensor_parallel} needs "
            f"{max(need, tensor_parallel)} GPUs, {len(devices)} visible ({','.join(devices) or 'none'}); "
            "lower them or give the step more GPUs"
        )
    if need < len(devices):
        log.warning("%d of %d visible GPUs stay idle: %d engine(s) x TP %d", len(devices) - need, len(devices),
                    engines, tensor_parallel)  # fmt: skip
    return [",".join(devices[k * tensor_parallel : (k + 1) * tensor_parallel]) for k in range(engines)]


def _worker(conn: Connection, engine: Engine, spec: ModelSpec, backend: BackendConfig, devices: str) -> None:
    os.environ["CUDA_VISIBLE_DEVICES"] = devices  # before anything initialises CUDA in this process
    try:
        llm = engine(spec, backend)
        conn.send(("ready", None))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    while True:
        requests = conn.recv()
        if requests is None:
            llm.close()
            return
        try:
            conn.send(("ok", llm.generate(requests)))
        except BaseException:
            conn.send(("error", traceback.format_exc()))


class DataParallel:
    def __init__(
        self, name: str, engine: Engine, spec: ModelSpec, backend: BackendConfig, groups: Sequence[str]
    ) -> None:
        ctx = mp.get_context("spawn")  # fork would copy an initialised CUDA context or vLLM threads
        self.workers: list[tuple[Any, Connection]] = []
        for devices in groups:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, engine, spec, backend, devices), daemon=True)
            proc.start()
            self.workers.append((proc, parent))
        for k, (_, conn) in enumerate(self.workers):
            status, detail = self._recv(k, conn)
            if status != "ready":
                self.close()
                raise BackendError(f"{name} engine {k} (devices {groups[k]!r}) failed to start:\n{detail}")

    def _recv(self, k: int, conn: Connection) -> tuple[str, Any]:
        try:
            msg: tuple[str, Any] = conn.recv()
        except EOFError:
            return "error", f"worker {k} died (exit code {self.workers[k][0].exitcode})"
        return msg

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        n = len(self.workers)
        bounds = [len(requests) * k // n for k in range(n + 1)]
        chunks = [list(requests[bounds[k] : bounds[k + 1]]) for k in range(n)]
        for (_, conn), chunk in zip(self.workers, chunks, strict=True):
            conn.send(chunk)
        results: list[list[Completion]] = []
        errors: list[str] = []
        for k, (_, conn) in enumerate(self.workers):  # collect all, so no worker is left mid-reply
            status, payload = self._recv(k, conn)
            if status == "ok":
                results.extend(payload)
            else:
                errors.append(f"engine {k}:\n{payload}")
        if errors:
            raise BackendError("data-parallel generation failed:\n" + "\n".join(errors))
        return results

    def close(self) -> None:
        for proc, conn in self.workers:
            if proc.is_alive():
                with contextlib.suppress(BrokenPipeError, OSError):
                    conn.send(None)
        for proc, _ in self.workers:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
        self.workers = []
