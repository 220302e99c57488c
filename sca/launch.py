"""Where a step's shards run: on this machine, or as SLURM jobs through submitit.

Local: ``inline`` steps run in this process, ``subprocess`` steps as ``python -m sca.step`` (GPU memory
is freed between stages and a crashed engine cannot take the orchestrator down), ``torchrun`` steps
under torchrun with every GPU this machine sees.

SLURM (``launcher=slurm``): each pending shard is one task of a job array, training is one multi-node
job whose tasks each start torchrun with a c10d rendezvous on the first node. A generation shard asks for
the GPUs its engine layout needs (tensor x data parallel; data parallel 0 = a whole node). Failed shards are retried
up to ``max_retries`` times; a shard that finished (its ``_DONE`` marker exists) is never redone. The
orchestrator only waits and merges, so it can run on a login node.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sca.config import Config, ConfigError
from sca.logs import (
    LOG_ENV,
    TERMINAL_ENV,
    count_warnings,
    error_file,
    failure_cause,
    inline_log,
    shard_log,
    terminal_path,
)
from sca.step import Launcher, Step, done_marker, run_shard

log = logging.getLogger(__name__)
RDZV_PORT = 29500


class StepFailed(RuntimeError):
    """A step's child process failed; the message is its one-line cause and where its full log is."""


def _check(step: Step, out: Path, returncode: int, log_file: Path | None = None) -> None:
    if returncode == 0:
        return
    resume = f"Finished records in {out} are kept: re-run the same command to resume."
    if log_file is None:
        raise StepFailed(f"step {step.name} failed in a child process (exit {returncode}); its log is above. {resume}")
    cause = failure_cause(log_file) or f"exit {returncode}, no Python error recorded (killed?)"
    raise StepFailed(f"step {step.name} failed: {cause}. Full log: {log_file}. {resume}")


@dataclass(frozen=True)
class LocalLauncher:
    torchrun_args: Sequence[str] = ("--standalone", "--nproc_per_node=1")
    quiet: bool = True
    """Libraries' output into each shard's log file (sca.logs); False: everything on the terminal."""

    def run(self, step: Step, out: Path, shards: Sequence[int]) -> None:
        for shard in shards:
            log_file = shard_log(out, shard) if self.quiet else None
            if step.where == "inline":
                with inline_log(log_file):
                    run_shard(out, shard)
                continue
            entry = ["-m", "sca.step", str(out), "--shard", str(shard)]
            if step.where == "subprocess":
                cmd = [sys.executable, *entry]
            else:
                cmd = [sys.executable, "-m", "torch.distributed.run", *self.torchrun_args, *entry]
            terminal = terminal_path() if log_file is not None else None
            if log_file is None or terminal is None:
                log.info("launch: %s", " ".join(cmd))
                _check(step, out, subprocess.run(cmd).returncode)
                continue
            log_file.parent.mkdir(parents=True, exist_ok=True)
            error_file(log_file).unlink(missing_ok=True)
            with open(log_file, "a", encoding="utf-8") as f:
                f.write(f"launch: {' '.join(cmd)}\n")
                f.flush()
                env = {**os.environ, TERMINAL_ENV: terminal, LOG_ENV: str(log_file)}
                code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
            _check(step, out, code.returncode, log_file)
            warnings = count_warnings(log_file)
            if warnings:
                log.info("%s: %d warning line(s) from libraries in %s", step.name, warnings, log_file)


def _shard_job(out: str, shard: int) -> None:
    """Body of one SLURM array task (runs on the compute node)."""
    run_shard(Path(out), shard)


def _torchrun_job(out: str, nproc_per_node: int) -> None:
    """Body of one task per node of a multi-node training job: torchrun with a c10d rendezvous."""
    import submitit

    env = submitit.JobEnvironment()
    cmd = [
        sys.executable, "-m", "torch.distributed.run",
        f"--nnodes={env.num_nodes}", f"--nproc_per_node={nproc_per_node}", f"--node_rank={env.node}",
        "--rdzv_backend=c10d", f"--rdzv_endpoint={env.hostnames[0]}:{RDZV_PORT}", f"--rdzv_id={env.job_id}",
        "-m", "sca.step", out, "--shard", "0",
    ]  # fmt: skip
    subprocess.run(cmd, check=True)


@dataclass(frozen=True)
class SubmititLauncher:
    """SLURM through submitit; ``cluster="local"`` runs the same jobs as local subprocesses (tests)."""

    folder: Path
    cluster: str = "slurm"
    partition: str | None = None
    account: str | None = None
    time_min: int = 240
    cpus_per_task: int = 16
    gpus_per_node: int = 8
    nnodes: int = 1
    max_retries: int = 2
    generation_gpus: int = 1
    """GPUs of one generation shard (``subprocess`` steps): what its engine layout needs, see engine_gpus."""

    def _executor(self, step: Step, nodes: int, gpus: int) -> Any:
        import submitit

        executor = submitit.AutoExecutor(folder=self.folder / "%j", cluster=self.cluster)
        job: dict[str, Any] = {"timeout_min": self.time_min, "name": f"sca-{step.name.replace('/', '-')}"}
        if self.cluster == "slurm":
            job |= {"nodes": nodes, "tasks_per_node": 1, "cpus_per_task": self.cpus_per_task}
            if gpus:  # CPU steps ask for none, so they can run on CPU partitions
                job["gpus_per_node"] = gpus
            extra = {k: v for k, v in (("partition", self.partition), ("account", self.account)) if v}
            job |= {f"slurm_{k}": v for k, v in extra.items()}
        executor.update_parameters(**job)
        return executor

    def gpus(self, step: Step) -> int:
        """GPUs one task of ``step`` asks for: a node's for training, the engine layout's for generation
        (judge, concepts, instructions, responses, eval), none for CPU steps (mining, execution, curation)."""
        return {"torchrun": self.gpus_per_node, "subprocess": self.generation_gpus}.get(step.where, 0)

    def run(self, step: Step, out: Path, shards: Sequence[int]) -> None:
        if step.where == "torchrun":
            job = self._executor(step, self.nnodes, self.gpus_per_node).submit(
                _torchrun_job, str(out), self.gpus_per_node
            )
            log.info("submitted %s as job %s (%d nodes)", step.name, job.job_id, self.nnodes)
            job.results()
            return
        gpus = self.gpus(step)
        pending = list(shards)
        for attempt in range(self.max_retries + 1):
            executor = self._executor(step, 1, gpus)
            jobs = executor.map_array(_shard_job, [str(out)] * len(pending), pending)
            log.info("submitted %s: %d shard(s) x %d GPU(s), attempt %d", step.name, len(pending), gpus, attempt + 1)
            failed = []
            for shard, job in zip(pending, jobs, strict=True):
                try:
                    job.result()
                except Exception as e:  # noqa: BLE001 - a failed shard is retried, its error logged
                    log.warning("%s shard %d failed (job %s): %s", step.name, shard, job.job_id, e)
                    failed.append(shard)
            pending = [s for s in failed if not done_marker(out, s).exists()]
            if not pending:
                return
        raise RuntimeError(
            f"step {step.name}: shards {pending} still failing after {self.max_retries} retries; "
            f"logs in {self.folder}. Finished shards are kept: re-run to retry only these."
        )


def visible_gpus() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    import torch

    return int(torch.cuda.device_count())


def engine_gpus(cfg: Config, gpus_per_node: int) -> int:
    """GPUs a generation process needs for its engine layout: vLLM's tensor x data parallel groups (data
    parallel 0 = the whole node), one for the hf backend, none for a remote (openai) server."""
    backend = cfg.generate.backend
    if backend.name == "openai":
        return 0
    if backend.name == "hf":
        return 1
    tp, dp = backend.tensor_parallel_size, backend.data_parallel_size
    need = tp * dp if dp else gpus_per_node
    if need > gpus_per_node or need % tp or need < tp:
        raise ConfigError(
            f"generate.backend.tensor_parallel_size={tp} x data_parallel_size={dp} does not fit "
            f"launcher.gpus_per_node={gpus_per_node}: the engines of one generation shard share a node "
            "(data_parallel_size=0 fills the node)"
        )
    return need


def make_launcher(cfg: Config) -> Launcher:
    lc = cfg.launcher
    if lc.name == "slurm":
        gpus_per_node = max(lc.gpus_per_node, 1)
        generation = engine_gpus(cfg, gpus_per_node)
        log.info(
            "slurm layout: generation shards get %d GPU(s) each (%s), training %d node(s) x %d GPU(s)",
            generation, cfg.generate.backend.name, lc.nnodes, gpus_per_node,
        )  # fmt: skip
        return SubmititLauncher(
            folder=Path(cfg.paths.root) / "submitit",
            cluster=lc.cluster,
            partition=lc.partition,
            account=lc.account,
            time_min=lc.time_min,
            cpus_per_task=lc.cpus_per_task,
            gpus_per_node=gpus_per_node,
            nnodes=lc.nnodes,
            max_retries=lc.max_retries,
            generation_gpus=generation,
        )
    gpus = lc.gpus_per_node if lc.gpus_per_node >= 0 else visible_gpus()
    return LocalLauncher(("--standalone", f"--nproc_per_node={max(gpus, 1)}"), quiet=not cfg.run.verbose)
