"""``generate.responses.stop_at_code_end``: an answer ends with its code, its tests are asked for next, and a
block the stop string left open is closed, so the sample parses (our recipe for small models)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from sca.config import ConfigError, to_config
from sca.generate.responses import CODE_END, TESTS_CUE, ask_for_tests, responses_of
from sca.llm.contract import Completion, Request
from sca.records import Instruction
from tests.test_stages import ScriptedBackend, _stage_of, plan, run, scripted  # noqa: F401 - scripted: a fixture

ANSWER = "Returns one.\n\n```python\ndef f():\n    return 1"  # what the backend returns when CODE_END fired
REQUEST = Request(prompt="<task>\nWrite f.\n</task>", seed=3, n=4, max_tokens=224, prefix="<response>\n")


def test_an_answer_stopped_at_its_code_end_is_closed_and_asked_for_tests() -> None:
    follow = ask_for_tests(REQUEST, 0, Completion(ANSWER, "stop", 10, 20), stopped_at_code_end=True)
    assert follow is not None and follow.n == 1
    assert follow.prefix == "<response>\n" + ANSWER + "\n```" + TESTS_CUE
    # Without the knob an unclosed block is not code the method would run: no follow-up (the old rule).
    assert ask_for_tests(REQUEST, 0, Completion(ANSWER, "stop", 10, 20)) is None
    # A sample cut at max_tokens is never continued, whatever it holds.
    assert ask_for_tests(REQUEST, 0, Completion(ANSWER, "length", 10, 224), stopped_at_code_end=True) is None


def test_the_spliced_sample_parses_with_the_tests_it_wrote() -> None:
    follow = ask_for_tests(REQUEST, 0, Completion(ANSWER, "stop", 10, 20), stopped_at_code_end=True)
    assert follow is not None
    added = follow.prefix[len(REQUEST.prefix) :]
    sample = Completion(added + "f() == 1\nassert f() + 1 == 2", "stop", 10, 30)  # its tests, stopped likewise
    counts: Counter[str] = Counter()
    instruction = Instruction(id="i", parent_id="c", text="Write f.", category="function", difficulty="easy")
    [response] = responses_of(instruction, [sample], counts)
    assert response.solution == "def f():\n    return 1\n"
    assert response.tests == "assert f() == 1\nassert f() + 1 == 2\n" and not counts


@pytest.mark.usefixtures("scripted")
def test_the_stage_adds_the_stop_string_only_when_asked(tmp_path: Path) -> None:
    steps = plan(continue_for_tests=True)
    responses = steps["responses"]
    stage = dataclasses.replace(responses.params.stage, stop_at_code_end=True)
    steps["responses"] = dataclasses.replace(responses, params=dataclasses.replace(responses.params, stage=stage))
    run(steps, tmp_path, "concepts", "instructions", "responses")
    asked = [req for call in ScriptedBackend.log for req in call if _stage_of(req) == "responses"]
    assert asked and all(CODE_END in req.stop for req in asked)
    others = [req for call in ScriptedBackend.log for req in call if _stage_of(req) != "responses"]
    assert others and not any(CODE_END in req.stop for req in others)


def test_it_needs_continue_for_tests() -> None:
    base = {"run": {"name": "t"}, "model": {"name_or_path": "m"}}
    off = {"generate": {"responses": {"stop_at_code_end": True, "continue_for_tests": False}}}
    with pytest.raises(ConfigError, match=r"generate\.responses\.stop_at_code_end=true .* continue_for_tests=true"):
        to_config({**base, **off})
