"""``generate.<stage>.sampling.stop``: the configured stop strings reach every request of that stage, after the
prompt file's own (the backends honour Request.stop: tests/test_backend*.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sca.config import to_config
from sca.pipeline import build_pipeline
from tests.test_stages import ScriptedBackend, _stage_of, plan, run, scripted  # noqa: F401 - scripted: a fixture


@pytest.mark.usefixtures("scripted")
def test_configured_stop_strings_reach_the_requests(tmp_path: Path) -> None:
    steps = plan(chat=True)
    responses = steps["responses"]
    stage = responses.params.stage
    stage = dataclasses.replace(stage, sampling=dataclasses.replace(stage.sampling, stop=["\n\n\n"]))
    steps["responses"] = dataclasses.replace(responses, params=dataclasses.replace(responses.params, stage=stage))
    run(steps, tmp_path, "concepts", "instructions", "responses")
    requests = [req for call in ScriptedBackend.log for req in call]
    asked = [req for req in requests if _stage_of(req) == "responses"]
    assert asked and all(req.stop == ("</tests>", "\n\n\n") for req in asked), {req.stop for req in asked}
    others = [req for req in requests if _stage_of(req) != "responses"]
    assert others and all("\n\n\n" not in req.stop for req in others), "only the configured stage gets them"


def test_stop_strings_enter_the_step_keys(tmp_path: Path) -> None:
    base = {"run": {"name": "t"}, "model": {"name_or_path": "m"}, "paths": {"root": str(tmp_path), "data": ""}}
    plain = {s.name: s.key for s in build_pipeline(to_config(base))}
    stop = {"generate": {"responses": {"sampling": {"stop": ["\n\n\n"]}}}}
    stopped = {s.name: s.key for s in build_pipeline(to_config({**base, **stop}))}
    assert plain["r0/instructions"] == stopped["r0/instructions"]
    assert plain["r0/responses"] != stopped["r0/responses"]
