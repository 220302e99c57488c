"""The RL steps in the plan: off by default, after SFT when on, hashed like the other steps, gated like rounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sca.config import ConfigError, to_config
from sca.pipeline import build_pipeline
from sca.rounds import eval_gate
from tests.test_config import composed


def plan(*overrides: str) -> dict[str, object]:
    return {s.name: s for s in build_pipeline(composed(*overrides, "paths.data="))}


def test_rl_is_off_by_default_and_leaves_the_plan_untouched(tmp_path: Path) -> None:
    off = plan("experiment=tiny")
    assert not [n for n in off if "rl" in n.split("/")]
    on = plan("experiment=tiny", "rl.enabled=true")
    assert list(on)[-2:] == ["r0/rl", "r0/rl/eval"]
    for name, step in off.items():  # turning RL on re-runs nothing that was already there
        assert on[name].key == step.key, name  # type: ignore[attr-defined]


def test_rl_starts_from_sft_and_the_next_round_generates_with_the_rl_model() -> None:
    steps = plan("experiment=tiny", "rl.enabled=true", "run.rounds=2")
    rl, rl_eval = steps["r0/rl"], steps["r0/rl/eval"]
    assert {k: d.name for k, d in rl.deps.items()} == {  # type: ignore[attr-defined]
        "data": "r0/sft_data", "responses": "r0/responses", "executions": "r0/executions", "model": "r0/train",
    }  # fmt: skip
    assert rl.where == "torchrun" and rl_eval.stage == "eval"  # type: ignore[attr-defined]
    assert steps["r1/concepts"].deps["model"].name == "r0/rl"  # type: ignore[attr-defined]
    assert steps["r1/rl"].deps["model"].name == "r1/train"  # type: ignore[attr-defined]


def test_rl_knobs_that_change_the_model_are_hashed_runtime_ones_are_not() -> None:
    base = plan("experiment=tiny", "rl.enabled=true")["r0/rl"]
    assert plan("experiment=tiny", "rl.enabled=true", "rl.beta=0.1")["r0/rl"].key != base.key  # type: ignore[attr-defined]
    assert plan("experiment=tiny", "rl.enabled=true", "sandbox.timeout_s=7")["r0/rl"].key != base.key  # type: ignore[attr-defined]
    for knob in ("rl.per_device_batch_size=2", "rl.use_vllm=false", "rl.save_steps=3", "sandbox.workers=1"):
        assert plan("experiment=tiny", "rl.enabled=true", knob)["r0/rl"].key == base.key, knob  # type: ignore[attr-defined]


def test_until_train_stops_before_rl_and_until_rl_before_its_eval() -> None:
    assert "r0/rl" not in plan("experiment=tiny", "rl.enabled=true", "run.until=train")
    steps = plan("experiment=tiny", "rl.enabled=true", "run.until=rl")
    assert "r0/rl" in steps and "r0/rl/eval" not in steps


def test_bad_rl_yaml_fails_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"rl\.max_stepz"):
        to_config({"run": {"name": "x"}, "model": {"name_or_path": "m"}, "rl": {"max_stepz": 3}})
    with pytest.raises(ConfigError, match="rl.num_generations"):
        composed("experiment=tiny", "rl.num_generations=3")


def test_the_gate_compares_the_rl_model_with_the_sft_model_it_started_from() -> None:
    sft = {"humaneval": {"pass@1_plus": 0.40}}
    assert eval_gate(sft, {"humaneval": {"pass@1_plus": 0.30}}, 0.05) == ["humaneval: pass@1+ 0.400 -> 0.300"]
    assert eval_gate(sft, {"humaneval": {"pass@1_plus": 0.42}}, 0.05) == []


def test_a_round_whose_rl_model_falls_below_its_sft_model_stops_the_next_round(tmp_path: Path) -> None:
    from sca.rounds import gate_open

    cfg = composed("experiment=tiny", "rl.enabled=true", "run.rounds=2", f"paths.root={tmp_path}", "paths.data=")
    steps = build_pipeline(cfg)
    first_round = [s for s in steps if not s.name.startswith("r1/")]

    def score(name: str, plus: float) -> None:
        [step] = [s for s in steps if s.name == name]
        out = step.out_dir(tmp_path / "store")
        out.mkdir(parents=True, exist_ok=True)
        (out / "scores.json").write_text(json.dumps({"humaneval": {"pass@1_plus": plus}}))

    score("base/eval", 0.10)
    score("r0/eval", 0.40)
    score("r0/rl/eval", 0.42)
    assert gate_open(first_round, tmp_path / "store", cfg.run.gate_margin)
    score("r0/rl/eval", 0.30)
    assert not gate_open(first_round, tmp_path / "store", cfg.run.gate_margin)
