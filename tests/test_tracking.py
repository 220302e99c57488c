"""W&B: offline files are written when no API key is set; disabled mode writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from sca.config import Config, LoggerConfig, PathsConfig, RunConfig
from sca.step import Step
from sca.tracking import open_tracker, resolve_mode


def test_auto_mode_is_offline_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert resolve_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode("auto") == "online"
    assert resolve_mode("disabled") == "disabled"


def test_offline_run_writes_its_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    cfg = Config(run=RunConfig(name="t"), paths=PathsConfig(root=str(tmp_path)), logger=LoggerConfig(mode="auto"))
    tracker = open_tracker(cfg, {"a": 1}, name="t-run")
    assert tracker is not None and tracker.mode == "offline"
    tracker.step_finished(Step("seeds", "m:f", {}), tmp_path, {"records": 5, "dropped_x": 2}, cached=False)
    tracker.log_tables({"report/funnel": (["stage", "records"], [["seeds", 5]])})
    assert tracker.run.summary["seeds/records"] == 5
    tracker.finish()
    runs = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1 and runs[0].stat().st_size > 0


def test_disabled_mode_opens_nothing(tmp_path: Path) -> None:
    cfg = Config(run=RunConfig(name="t"), paths=PathsConfig(root=str(tmp_path)), logger=LoggerConfig(mode="disabled"))
    assert open_tracker(cfg, {}, name="x") is None
    assert not (tmp_path / "wandb").exists()
