"""W&B tracking: one group per experiment, one ``pipeline`` run per invocation with a section per step.

Why one run with per-step sections rather than one run per step: cached steps cost nothing to log
into the run that reuses them, the funnel needs every step's counters in one table, and W&B compares
invocations (base vs tuned, sweep trials) within the group. Training is the exception: TRL's own run
(rank 0 only) joins the same group, so loss curves sit beside the pipeline run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sca.config import Config
from sca.step import Step

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WandbRun:
    """Where a training step's own W&B run goes: the experiment's group, under its own name (runtime)."""

    mode: str
    project: str
    entity: str | None
    group: str
    name: str
    dir: str


def wandb_run(cfg: Config, name: str) -> WandbRun:
    return WandbRun(
        mode=resolve_mode(cfg.logger.mode),
        project=cfg.logger.project,
        entity=cfg.logger.entity,
        group=cfg.run.name,
        name=name,
        dir=str(Path(cfg.paths.root).resolve()),
    )


def resolve_mode(mode: str) -> str:
    """``auto`` is online only when an API key is configured, so a laptop without one never blocks."""
    if mode != "auto":
        return mode
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


class WandbTracker:
    """Logs step counters, the funnel, eval scores and artifacts into one W&B run."""

    def __init__(self, cfg: Config, config_dict: Mapping[str, Any], name: str) -> None:
        import wandb

        self.mode = resolve_mode(cfg.logger.mode)
        self.run = wandb.init(
            project=cfg.logger.project,
            entity=cfg.logger.entity,
            group=cfg.run.name,
            name=name,
            job_type="pipeline",
            config=dict(config_dict),
            dir=str(Path(cfg.paths.root).resolve()),
            mode=self.mode,  # type: ignore[arg-type]
        )

    def step_finished(self, step: Step, out: Path, stats: Mapping[str, float], cached: bool) -> None:
        values = {f"{step.name}/{k}": v for k, v in stats.items() if isinstance(v, int | float)}
        values[f"{step.name}/cached"] = int(cached)
        self.run.log(values)
        self.run.summary.update(values)
        self.run.summary[f"{step.name}/dir"] = str(out)

    def log_tables(self, tables: Mapping[str, tuple[Sequence[str], Sequence[Sequence[Any]]]]) -> None:
        import wandb

        for key, (columns, rows) in tables.items():
            self.run.log({key: wandb.Table(columns=list(columns), data=[list(r) for r in rows])})

    def log_summary(self, values: Mapping[str, float]) -> None:
        self.run.summary.update(dict(values))

    def log_images(self, images: Mapping[str, Path]) -> None:
        import wandb

        self.run.log({k: wandb.Image(str(p)) for k, p in images.items()})

    def log_artifact(
        self,
        name: str,
        kind: str,
        path: Path,
        uses: Sequence[str] = (),
        reference: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """A dataset or model as an artifact; ``uses`` names artifacts it was made from (lineage).

        ``reference`` records checksums of files that stay where they are, instead of copying
        gigabytes of weights into the W&B staging area.
        """
        import wandb

        if self.mode == "online":  # W&B records lineage edges only online; offline keeps them as metadata
            for used in uses:
                self.run.use_artifact(used)
        artifact = wandb.Artifact(name, type=kind, metadata={"made_from": list(uses), **(metadata or {})})
        if reference:
            artifact.add_reference(path.resolve().as_uri())
        elif path.is_dir():
            artifact.add_dir(str(path))
        else:
            artifact.add_file(str(path))
        self.run.log_artifact(artifact)

    def finish(self) -> None:
        self.run.finish()


def open_tracker(cfg: Config, config_dict: Mapping[str, Any], name: str) -> WandbTracker | None:
    if resolve_mode(cfg.logger.mode) == "disabled":
        return None
    return WandbTracker(cfg, config_dict, name)
