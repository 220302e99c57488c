"""Pipeline wiring: rounds are chunked in order, and the eval gate stops a round that made the model worse."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sca.pipeline import build_pipeline
from sca.rounds import eval_gate, split_rounds
from sca.step import Step
from tests.test_config import composed


def test_rounds_split_in_order(tmp_path: Path) -> None:
    plan = build_pipeline(composed(f"paths.root={tmp_path}", "run.rounds=2"))
    chunks = split_rounds(plan)
    assert [s.name for s in chunks[0]][:3] == ["mined_seeds", "seeds", "base/eval"]
    assert {s.name.split("/")[0] for s in chunks[0][3:]} == {"r0"}
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


def test_eval_is_keyed_by_the_benchmark_data_not_its_location(tmp_path: Path) -> None:
    from tests.conftest import BENCHMARKS

    def eval_hashes(*overrides: str) -> dict[str, str]:
        plan = build_pipeline(composed(f"paths.root={tmp_path}", f"paths.data={BENCHMARKS}", *overrides))
        return {s.name: s.key for s in plan if s.name.endswith("eval")}

    default = eval_hashes()
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.copy(BENCHMARKS / "HumanEvalPlus-v0.1.10.jsonl.gz", moved / "he.jsonl.gz")
    assert eval_hashes(f"paths.humaneval={moved / 'he.jsonl.gz'}") == default, "same data, another place"
    assert eval_hashes("paths.data=") == default, "the release evalplus would download is the same data"
    older = eval_hashes(f"paths.humaneval={BENCHMARKS / 'HumanEvalPlus-v0.1.9.jsonl.gz'}")
    assert all(older[name] != default[name] for name in default), "another release must re-run evaluation"
    assert eval_hashes("eval.float_tolerance=false") != default


def test_published_grading_reads_the_published_releases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from tests.conftest import BENCHMARKS, REFERENCE

    def plan(*overrides: str) -> dict[str, Step]:
        cfg = composed(f"paths.root={tmp_path}", f"paths.data={BENCHMARKS}", *overrides)
        return {s.name: s for s in build_pipeline(cfg)}

    default, published = plan(), plan("eval=evalplus_2024")
    step = published["r0/eval"]
    assert step.params.benchmarks.paths["humaneval"].endswith("HumanEvalPlus-v0.1.9.jsonl.gz")
    assert step.params.eval.float_tolerance is False
    for b in ("humaneval", "mbpp"):
        results = json.loads((REFERENCE / f"evalplus-starcoder2-15b-instruct-v0.1-{b}_eval_results.json").read_text())
        assert step.params.benchmarks.hashes[b] == results["hash"], "the data the published results were scored on"
    # Decontamination reads the same files, so its steps follow the data too.
    assert all(published[n].key != default[n].key for n in ("seeds", "r0/sft_data", "base/eval", "r0/eval"))

    # A machine set up for evalplus (its override variables) needs no sca setting.
    monkeypatch.setenv("HUMANEVAL_OVERRIDE_PATH", str(BENCHMARKS / "HumanEvalPlus-v0.1.9.jsonl.gz"))
    overridden = plan()
    hashes = {
        name: plan.params.benchmarks.hashes
        for name, plan in (("over", overridden["r0/eval"]), ("default", default["r0/eval"]))
    }
    assert hashes["over"]["humaneval"] == step.params.benchmarks.hashes["humaneval"]
    assert hashes["over"]["mbpp"] == hashes["default"]["mbpp"]
