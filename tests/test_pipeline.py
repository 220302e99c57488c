"""Pipeline wiring: rounds are chunked in order, and the eval gate stops a round that made the model worse."""

from __future__ import annotations

from pathlib import Path

from sca.pipeline import build_pipeline, eval_gate, split_rounds
from sca.step import Step
from tests.test_config import composed


def test_rounds_split_in_order(tmp_path: Path) -> None:
    plan = build_pipeline(composed(f"paths.root={tmp_path}", "run.rounds=2"))
    chunks = split_rounds(plan)
    assert [s.name for s in chunks[0]][:2] == ["seeds", "base/eval"]
    assert {s.name.split("/")[0] for s in chunks[0][2:]} == {"r0"}
    assert {s.name.split("/")[0] for s in chunks[1]} == {"r1"}
    assert sum(len(c) for c in chunks) == len(plan)


def test_split_rounds_of_a_flat_plan() -> None:
    steps = [Step("a", "m:f", {}), Step("b", "m:f", {})]
    assert split_rounds(steps) == [steps]


def test_eval_gate() -> None:
    before = {"humaneval": {"pass@1_plus": 0.40}, "mbpp": {"pass@1_plus": 0.50}}
    assert eval_gate(before, {"humaneval": {"pass@1_plus": 0.38}, "mbpp": {"pass@1_plus": 0.55}}, 0.05) == []
    drops = eval_gate(before, {"humaneval": {"pass@1_plus": 0.30}, "mbpp": {"pass@1_plus": 0.55}}, 0.05)
    assert drops == ["humaneval: pass@1+ 0.400 -> 0.300"]
    assert eval_gate({}, {"humaneval": {"pass@1_plus": 0.1}}, 0.0) == [], "nothing to compare with"
