"""The one entry point: ``python -m sca.main [experiment=NAME] [overrides]``.

Hydra composes the YAML tree, :func:`sca.config.to_config` validates it into typed dataclasses, and
:func:`run` builds the plan, runs the steps that are not cached, and writes the report.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sca.config import Config, ConfigError, to_config
from sca.pipeline import build_pipeline, describe, torchrun_args
from sca.progress import console, table
from sca.step import StepLocked, check_force, plan_status, run_plan

log = logging.getLogger("sca")
ConfigStore.instance().store(name="schema", node=Config)


def print_plan(cfg: Config) -> None:
    steps = build_pipeline(cfg)
    store = Path(cfg.paths.store)
    rows = [(s.name, status, s.where, str(s.out_dir(store))) for s, status in plan_status(steps, store, set(cfg.run.force))]
    console.print(table(f"plan: {cfg.run.name} (dry run)", ["step", "status", "where", "directory"], rows))


def run(cfg: Config, overrides: Sequence[str] = (), run_dir: Path | None = None) -> dict[str, dict[str, float]]:
    """Run the experiment; returns each step's stats."""
    from sca.io import write_json
    from sca.report import write_report
    from sca.tracking import open_tracker

    steps = build_pipeline(cfg)
    check_force(steps, cfg.run.force)
    if cfg.run.dry_run:
        print_plan(cfg)
        return {}
    store = Path(cfg.paths.store)
    run_dir = run_dir or Path(cfg.paths.runs) / cfg.run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "sca.main", *overrides]
    (run_dir / "command.txt").write_text(" ".join(command) + "\n")
    config_dict = describe(cfg)
    write_json(run_dir / "config.json", config_dict)
    tracker = open_tracker(cfg, config_dict, name=f"{cfg.run.name}-{run_dir.name}")
    try:
        results = run_plan(
            steps,
            store,
            tracker,
            force=cfg.run.force,
            meta={"overrides": list(overrides), "command": command, "run_dir": str(run_dir)},
            torchrun_args=torchrun_args(cfg),
        )
        write_report(cfg, steps, store, results, run_dir, tracker)
    finally:
        if tracker is not None:
            tracker.finish()
    return results


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(composed: DictConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    hydra_cfg = HydraConfig.get()
    try:
        cfg = to_config(composed)
        run(cfg, overrides=list(hydra_cfg.overrides.task), run_dir=Path(hydra_cfg.runtime.output_dir))
    except (ConfigError, FileNotFoundError, StepLocked) as e:
        # Bad input, missing files and a busy step are the user's to fix: say what, without a traceback.
        log.error("%s", e)
        sys.exit(2)


if __name__ == "__main__":
    main()
