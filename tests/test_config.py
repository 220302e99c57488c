"""Config: every experiment composes and validates; bad config fails at once naming the key; hashing rules."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from sca.config import Config, ConfigError, TrainConfig, to_config
from sca.main import ConfigStore  # noqa: F401 - registers the schema
from sca.params import hash_view
from sca.pipeline import build_pipeline
from sca.runner import plan_status

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def composed(*overrides: str) -> Config:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return to_config(compose("config", overrides=list(overrides)))


def test_there_are_the_documented_experiments() -> None:
    assert {"smollm2", "tiny", "codeqwen7b", "starcoder2_15b", "qwen25coder7b"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_validates_and_plans(name: str, tmp_path: Path) -> None:
    cfg = composed(f"experiment={name}", f"paths.root={tmp_path}", "paths.data=")
    assert cfg.run.name == name
    steps = build_pipeline(cfg)
    names = [s.name for s in steps]
    assert names[:2] == ["mined_seeds", "seeds"] and names[-1] == ("r0/rl/eval" if cfg.rl.enabled else "r0/eval")
    assert len(set(s.out_dir(tmp_path) for s in steps)) == len(steps), "two steps share a directory"
    assert {status for _, status in plan_status(steps, tmp_path, set())} <= {"run", "blocked"}


def test_default_is_the_embedded_smollm2() -> None:
    cfg = composed()
    assert cfg.run.name == "smollm2" and cfg.model.name_or_path == "embedded:smollm2"
    assert cfg.generate.backend.name == "vllm" and cfg.train.method == "lora"


def test_paper_run_uses_the_papers_recipe() -> None:
    cfg = composed("experiment=codeqwen7b")
    assert cfg.model.name_or_path == "Qwen/CodeQwen1.5-7B"
    assert cfg.generate.responses.sampling.n == 10 and cfg.generate.seeds.limit == 250000
    t = cfg.train
    assert (t.method, t.optim, t.learning_rate, t.global_batch_size, t.max_length) == (
        "full",
        "adafactor",
        1e-5,
        64,
        1280,
    )
    assert t.deepspeed == "conf/deepspeed/zero3.json"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.learning_rate=fast", "train.learning_rate"),
        ("run.until=nowhere", "run.until='nowhere'"),
        ("generate.backend.name=tgi", "generate.backend.name"),
        ("sandbox.min_tier=Z", "sandbox.min_tier"),
        ("train.method=qlora", "train.method"),
        ("curate.decontaminate=[apps]", "curate.decontaminate='apps'"),
    ],
)
def test_bad_values_name_the_key(override: str, message: str) -> None:
    with pytest.raises((ConfigError, Exception), match=message.replace(".", r"\.")):
        composed(override)


def test_unknown_key_is_rejected_by_name() -> None:
    with pytest.raises(ConfigError, match=r"generate\.seeds\.limitt"):
        to_config({"run": {"name": "x"}, "model": {"name_or_path": "m"}, "generate": {"seeds": {"limitt": 3}}})


def test_missing_required_value_is_named() -> None:
    with pytest.raises(ConfigError, match=r"model\.name_or_path"):
        to_config({"run": {"name": "x"}})


def test_hash_view_drops_runtime_fields_and_hashes_prompt_content() -> None:
    cfg = composed()
    train = hash_view(cfg.train)
    assert "per_device_batch_size" not in train and "learning_rate" in train
    runtime_fields = {f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("hash") is False}
    assert runtime_fields == {f.name for f in dataclasses.fields(TrainConfig)} - set(train)
    backend = hash_view(cfg.generate.backend)
    assert backend == {"name": "vllm"}, "only the engine choice may change generation outputs"
    stage = hash_view(cfg.generate.concepts)
    assert stage["prompt"].startswith("sha256:")


def test_runtime_override_keeps_step_keys_and_semantic_override_changes_them(tmp_path: Path) -> None:
    base = {s.name: s.key for s in build_pipeline(composed(f"paths.root={tmp_path}"))}
    rt = {s.name: s.key for s in build_pipeline(composed(f"paths.root={tmp_path}", "generate.backend.batch_size=7"))}
    assert rt == base
    temp = {
        s.name: s.key
        for s in build_pipeline(composed(f"paths.root={tmp_path}", "generate.responses.sampling.temperature=0.5"))
    }
    changed = {name for name in base if base[name] != temp[name]}
    assert changed == {"r0/responses", "r0/executions", "r0/sft_data", "r0/train", "r0/eval"}


def test_rounds_chain_models(tmp_path: Path) -> None:
    steps = build_pipeline(composed(f"paths.root={tmp_path}", "run.rounds=2"))
    r1 = next(s for s in steps if s.name == "r1/concepts")
    assert r1.deps["model"].name == "r0/train"
    assert r1.params.llm.trained_by == "r0/train" and r1.params.llm.chat


def test_until_truncates_the_plan(tmp_path: Path) -> None:
    steps = build_pipeline(composed(f"paths.root={tmp_path}", "run.until=seeds"))
    assert [s.name for s in steps] == ["mined_seeds", "seeds"]


def test_cli_reports_a_bad_override_without_a_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sca.main", f"paths.root={tmp_path}", "run.until=nowhere"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )
    assert proc.returncode == 2
    assert "run.until='nowhere'" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_dry_run_prints_the_plan(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sca.main", f"paths.root={tmp_path}", "run.dry_run=true", "paths.data="],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("seeds", "r0/concepts", "r0/train", "r0/eval", "base/eval"):
        assert name in proc.stdout + proc.stderr
    assert not (tmp_path / "store").exists(), "a dry run writes nothing to the store"


def test_chat_template_content_enters_the_keys(tmp_path: Path) -> None:
    template = tmp_path / "t.jinja"
    template.write_text("{{ messages[0]['content'] }}")
    one = {s.name: s.key for s in build_pipeline(composed(f"paths.root={tmp_path}", f"model.chat_template={template}"))}
    template.write_text("{{ messages[0]['content'] }}!")
    two = {s.name: s.key for s in build_pipeline(composed(f"paths.root={tmp_path}", f"model.chat_template={template}"))}
    assert one["seeds"] == two["seeds"]
    assert one["r0/concepts"] != two["r0/concepts"] and one["r0/train"] != two["r0/train"]


def test_missing_chat_template_is_named() -> None:
    with pytest.raises(FileNotFoundError, match="model.chat_template='nope.jinja'"):
        build_pipeline(composed("model.chat_template=nope.jinja"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_test_strength_checks_are_ours_not_the_papers(name: str) -> None:
    cfg = composed(f"experiment={name}")
    ours = name in ("smollm2", "tiny")
    assert (cfg.sandbox.stub_check, cfg.curate.require_strong_tests) == (ours, ours)


def test_requiring_strong_tests_without_the_stub_check_fails_at_the_entry() -> None:
    with pytest.raises((ConfigError, Exception), match=r"sandbox\.stub_check"):
        composed("experiment=codeqwen7b", "curate.require_strong_tests=true")
