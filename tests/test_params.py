"""Typed step params: every planned step declares them, they survive spec.json, and nothing reads a string key."""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from pathlib import Path

import pytest

from sca.config import SandboxConfig
from sca.params import hash_view, rebuild, to_json, type_name
from sca.pipeline import build_pipeline
from sca.sandbox.step import ExecutionsParams
from sca.step import StepContext, import_fn
from tests.test_config import composed

ROOT = Path(__file__).resolve().parent.parent
PLANS = [(), ("experiment=codeqwen7b",), ("rl.enabled=true", "run.rounds=2"), ("experiment=tiny",)]


def planned(tmp_path: Path, overrides: tuple[str, ...]) -> list:
    return build_pipeline(composed(f"paths.root={tmp_path}", "paths.data=", *overrides))


@pytest.mark.parametrize("overrides", PLANS, ids=lambda o: " ".join(o) or "default")
def test_every_step_function_declares_the_params_it_is_given(tmp_path: Path, overrides: tuple[str, ...]) -> None:
    for step in planned(tmp_path, overrides):
        hints = typing.get_type_hints(import_fn(step.fn))
        [ctx_type] = [t for name, t in hints.items() if name != "return"]
        assert typing.get_origin(ctx_type) is StepContext, step.fn
        [declared] = typing.get_args(ctx_type)
        assert isinstance(step.params, declared), f"{step.name}: {type(step.params).__name__} is not {declared}"
        assert dataclasses.is_dataclass(declared) and declared.__dataclass_params__.frozen, declared  # type: ignore[attr-defined]


@pytest.mark.parametrize("overrides", PLANS, ids=lambda o: " ".join(o) or "default")
def test_params_survive_spec_json_exactly(tmp_path: Path, overrides: tuple[str, ...]) -> None:
    """What a child process rebuilds from spec.json is what the planner built, runtime fields included."""
    for step in planned(tmp_path, overrides):
        text = json.dumps(to_json(step.params))
        assert rebuild(type_name(step.params), json.loads(text)) == step.params, step.name


def test_a_spec_that_does_not_fit_its_params_is_named() -> None:
    params = ExecutionsParams(SandboxConfig())
    data = to_json(params)
    with pytest.raises(ValueError, match=r"ExecutionsParams.*sandbox\.timeout_s"):
        rebuild(type_name(params), {"sandbox": {**data["sandbox"], "timeout_s": "soon"}})
    with pytest.raises(ValueError, match="timeout_seconds"):
        rebuild(type_name(params), {"sandbox": {**data["sandbox"], "timeout_seconds": 3}})
    with pytest.raises(ValueError, match=r"sandbox.timeout_s=0"):  # the section's own checks run again
        rebuild(type_name(params), {"sandbox": {**data["sandbox"], "timeout_s": 0}})


def test_runtime_fields_stay_out_of_the_key_and_prompt_files_enter_by_content(tmp_path: Path) -> None:
    default = {s.name: s for s in planned(tmp_path, ())}
    faster = {s.name: s for s in planned(tmp_path, ("generate.backend.batch_size=7", "sandbox.workers=1"))}
    assert {n: s.key for n, s in faster.items()} == {n: s.key for n, s in default.items()}
    assert faster["r0/responses"].params.llm.backend.batch_size == 7, "runtime values still reach the step"
    view = hash_view(default["r0/concepts"].params)
    assert "batch_size" not in view["llm"]["backend"] and view["stage"]["prompt"].startswith("sha256:")


def test_no_step_reads_params_by_string_key() -> None:
    """The typed contract holds in the code: no ``params["x"]``, ``params.get``, or untyped ``ctx.runtime``."""
    pattern = re.compile(r"params\[\s*[\"']|params\.get\(|\bctx\.runtime\b|\bruntime\[\s*[\"']|runtime\.get\(")
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in sorted((ROOT / "sca").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []


def test_a_prompt_file_edited_after_planning_stops_the_step(tmp_path: Path) -> None:
    """Its outputs would sit under a key made from the old text: the child refuses, naming the field."""
    from sca.config import StageConfig
    from sca.generate.concepts import ConceptsParams
    from sca.step import run_shard
    from tests.helpers.params import llm_params

    prompt = tmp_path / "concepts.txt"
    prompt.write_text((ROOT / "sca" / "generate" / "prompts" / "concepts.txt").read_text())
    params = ConceptsParams(llm_params("m"), StageConfig(prompt=str(prompt)), 0)
    spec = {"name": "r0/concepts", "fn": "sca.generate.concepts:run", "params": to_json(params),
            "params_type": type_name(params), "hashed": hash_view(params), "inputs": {}, "num_shards": 1}  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    prompt.write_text(prompt.read_text() + "\nOne more rule.\n")
    with pytest.raises(ValueError, match=r"r0/concepts: stage\.prompt changed after the plan was built"):
        run_shard(tmp_path)
