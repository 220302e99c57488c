"""The one entry point: ``python -m sca.main [experiment=NAME] [overrides]``.

Hydra composes the YAML tree, :func:`sca.config.to_config` validates it into typed dataclasses, and
:func:`run` builds the plan, runs the steps that are not cached, and writes the report.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sca.config import Config, ConfigError, to_config
from sca.pipeline import build_pipeline
from sca.progress import console, table
from sca.rounds import gate_open, split_rounds
from sca.runner import StepLocked, check_force, plan_status, run_plan
from sca.step import Step

log = logging.getLogger("sca")
ConfigStore.instance().store(name="schema", node=Config)


def print_plan(cfg: Config, steps: Sequence[Step[Any]]) -> None:
    store = Path(cfg.paths.store)
    forced = check_force(steps, cfg.run.force)
    rows = [(s.name, status, s.where, str(s.out_dir(store))) for s, status in plan_status(steps, store, forced)]
    console.print(table(f"plan: {cfg.run.name} (dry run)", ["step", "status", "where", "directory"], rows))


def run(cfg: Config, overrides: Sequence[str] = (), run_dir: Path | None = None) -> dict[str, dict[str, float]]:
    """Run the experiment; returns each step's stats."""
    from sca.io import write_json
    from sca.launch import make_launcher
    from sca.report import write_report
    from sca.share import publish
    from sca.tracking import open_tracker

    steps = build_pipeline(cfg)
    forced = check_force(steps, cfg.run.force)
    if cfg.run.dry_run:
        print_plan(cfg, steps)
        return {}
    store = Path(cfg.paths.store)
    run_dir = run_dir or Path(cfg.paths.runs) / cfg.run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "sca.main", *overrides]
    (run_dir / "command.txt").write_text(" ".join(command) + "\n")
    config_dict = dataclasses.asdict(cfg)  # for the run directory and W&B
    write_json(run_dir / "config.json", config_dict)
    tracker = open_tracker(cfg, config_dict, name=f"{cfg.run.name}-{run_dir.name}")
    results: dict[str, dict[str, float]] = {}
    ran: list[Step[Any]] = []
    try:
        for chunk in split_rounds(steps):
            if not gate_open(ran, store, cfg.run.gate_margin):
                break
            results |= run_plan(
                chunk,
                store,
                tracker,
                force=[s.name for s in chunk if s.name in forced],
                meta={"overrides": list(overrides), "command": command, "run_dir": str(run_dir)},
                launcher=make_launcher(cfg),
            )
            ran += chunk
        write_report(cfg, ran, store, results, run_dir, tracker)
        publish(cfg, ran, store, results, run_dir, tracker)
    finally:
        if tracker is not None:
            tracker.finish()
    return results


def check_inputs(cfg: Config) -> None:
    """What the config names on this machine, checked before any step runs (steps fail minutes later)."""
    name = cfg.model.name_or_path
    # A hub id is "org/name"; a local path starts like one. A missing local model would otherwise surface
    # in a child process, after the seeds stage, as a hub lookup error.
    if name.startswith(("/", ".", "~")):
        path = Path(name).expanduser()
        if not path.is_dir():
            what = "is a file, not a model directory" if path.exists() else "does not exist"
            raise ConfigError(
                f"model.name_or_path={name}: {what}; give a local model directory, a hub id (org/name) "
                "or embedded:smollm2"
            )
    from sca.models import EMBEDDED, TINY

    if name.startswith("embedded:") and name not in (EMBEDDED, TINY):
        raise ConfigError(f"model.name_or_path={name}: the embedded models are {EMBEDDED} and {TINY}")
    if cfg.model.chat_template:
        from sca.models import chat_template_path

        chat_template_path(cfg.model.chat_template)


def fail(message: str, code: int) -> None:
    """One line on stderr, last, then exit: the user's to fix, no traceback."""
    sys.stderr.flush()
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(composed: DictConfig) -> None:
    from sca.launch import StepFailed
    from sca.logs import setup_orchestrator

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    setup_orchestrator(None, verbose=False)  # until the config says otherwise
    try:
        cfg = to_config(composed)
        check_inputs(cfg)
        setup_orchestrator(None if cfg.run.dry_run else run_dir, cfg.run.verbose)
        run(cfg, overrides=list(hydra_cfg.overrides.task), run_dir=run_dir)
    except (ConfigError, FileNotFoundError, StepLocked) as e:
        # Bad input, missing files and a busy step are the user's to fix: say what, without a traceback.
        fail(str(e), 2)
    except StepFailed as e:
        fail(str(e), 1)


if __name__ == "__main__":
    main()
