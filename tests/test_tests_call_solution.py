"""``generate.responses.tests_call_solution``: the tests a model is asked for start with a call of its own
function, so a small model cannot open them with an assert about literals (our recipe for small models)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from sca.config import ConfigError, to_config
from sca.generate.responses import TESTS_CUE, ask_for_tests, cue_for_tests, responses_of
from sca.llm.contract import Completion, Request
from sca.records import Instruction
from tests.test_stages import ScriptedBackend, _stage_of, plan, run, scripted  # noqa: F401 - scripted: a fixture

REQUEST = Request(prompt="<task>\nWrite total.\n</task>", seed=3, n=4, max_tokens=224, prefix="<response>\n")
HELPER_THEN_ENTRY = """```python
def _clean(xs):
    return [x for x in xs if x is not None]

def helper(xs):
    def inner(x):
        return x
    return [inner(x) for x in xs]

def total(xs):
    return sum(helper(_clean(xs)))
```"""


def test_the_cue_calls_the_last_top_level_function() -> None:
    # Nested functions, private helpers and test functions are not what the tests should call.
    assert cue_for_tests(HELPER_THEN_ENTRY, call_solution=True) == TESTS_CUE + "total("
    assert cue_for_tests("```python\ndef test_total():\n    pass\n```", call_solution=True) == TESTS_CUE
    # A script without a function keeps the bare cue; so does every answer with the knob off.
    assert cue_for_tests("```python\nprint(sum([1, 2]))\n```", call_solution=True) == TESTS_CUE
    assert cue_for_tests(HELPER_THEN_ENTRY, call_solution=False) == TESTS_CUE


def test_the_follow_up_and_the_spliced_sample_carry_the_call() -> None:
    answer = "Sum the values that are set.\n\n" + HELPER_THEN_ENTRY
    follow = ask_for_tests(REQUEST, 0, Completion(answer, "stop", 10, 40), call_solution=True)
    assert follow is not None and follow.prefix.endswith("```python\nassert total(")
    added = follow.prefix[len(REQUEST.prefix) :]
    sample = Completion(added + "[1, None, 2]) == 3\nassert total([]) == 0\n```\n</tests>", "stop", 10, 60)
    counts: Counter[str] = Counter()
    instruction = Instruction(id="i", parent_id="c", text="Write total.", category="function", difficulty="easy")
    [response] = responses_of(instruction, [sample], counts)
    assert response.tests == "assert total([1, None, 2]) == 3\nassert total([]) == 0\n" and not counts
    assert "assert" not in response.text  # the SFT example shows the answer, not the tests


@pytest.mark.usefixtures("scripted")
def test_the_stage_asks_for_tests_that_call_the_solution(tmp_path: Path) -> None:
    steps = plan(continue_for_tests=True)
    responses = steps["responses"]
    stage = dataclasses.replace(responses.params.stage, tests_call_solution=True)
    steps["responses"] = dataclasses.replace(responses, params=dataclasses.replace(responses.params, stage=stage))
    run(steps, tmp_path, "concepts", "instructions", "responses")
    follow_ups = [
        req for call in ScriptedBackend.log for req in call if _stage_of(req) == "responses" and "<tests>" in req.prefix
    ]
    assert follow_ups and all(req.prefix.endswith("```python\nassert f(") for req in follow_ups)


def test_it_needs_continue_for_tests() -> None:
    base = {"run": {"name": "t"}, "model": {"name_or_path": "m"}}
    off = {"generate": {"responses": {"tests_call_solution": True, "continue_for_tests": False}}}
    with pytest.raises(ConfigError, match=r"generate\.responses\.tests_call_solution=true .* continue_for_tests=true"):
        to_config({**base, **off})
