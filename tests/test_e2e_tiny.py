"""The whole loop, end to end, through `python -m sca.main`: a tiny random model trained and evaluated for real,
generation answered by a scripted OpenAI-compatible server (tests/helpers/scripted_server.py) through the real
`openai` backend, execution in the real sandbox, curation, LoRA SFT under torchrun, EvalPlus scoring."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from sca.io import read_records
from sca.records import Concepts, Execution, Instruction, Response, Seed, SFTExample
from tests.conftest import BENCHMARKS

ROOT = Path(__file__).resolve().parent.parent
STEPS = ["mined_seeds", "seeds", "base/eval", "r0/concepts", "r0/instructions", "r0/responses", "r0/executions",
         "r0/sft_data", "r0/train", "r0/eval"]  # fmt: skip


def sca_main(root: Path, tiny: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    args = [
        sys.executable, "-m", "sca.main", "experiment=tiny", f"paths.root={root}", f"paths.data={BENCHMARKS}",
        f"model.name_or_path={tiny}", "generate.backend.name=openai", f"generate.backend.base_url={url}",
        "logger.mode=offline", *extra,
    ]  # fmt: skip
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        print(proc.stdout[-5000:], proc.stderr[-20000:])
    return proc


def ran_steps(log: str) -> set[str]:
    return set(re.findall(r"INFO sca.runner: run\s+(\S+)", log))


def step_dir(store: Path, name: str) -> Path:
    [found] = [p for p in store.glob(f"{name}-*") if p.is_dir()]
    return found


def test_whole_loop_flows_ids_and_reruns_only_what_changed(
    tmp_path: Path, tiny_model_dir: Path, server_url: str
) -> None:
    first = sca_main(tmp_path, tiny_model_dir, server_url)
    assert first.returncode == 0
    assert ran_steps(first.stderr) == set(STEPS)
    store = tmp_path / "store"
    for name in STEPS:
        assert (step_dir(store, name) / "_SUCCESS").exists(), name

    seeds = {s.id: s for s in read_records(step_dir(store, "seeds"), Seed)}
    concepts = {c.id: c for c in read_records(step_dir(store, "r0/concepts"), Concepts)}
    instructions = {i.id: i for i in read_records(step_dir(store, "r0/instructions"), Instruction)}
    responses = {r.id: r for r in read_records(step_dir(store, "r0/responses"), Response)}
    executions = {e.parent_id: e for e in read_records(step_dir(store, "r0/executions"), Execution)}
    examples = read_records(step_dir(store, "r0/sft_data"), SFTExample)
    assert len(seeds) == 4 and concepts and instructions and responses and examples
    assert {c.parent_id for c in concepts.values()} <= set(seeds)
    assert {i.parent_id for i in instructions.values()} <= set(concepts)
    assert {r.parent_id for r in responses.values()} <= set(instructions)
    assert set(executions) == set(responses), "one execution per response"
    verdicts = {e.verdict for e in executions.values()}
    assert {"passed", "failed"} <= verdicts, verdicts
    for example in examples:
        response = responses[example.parent_id]
        assert executions[response.id].verdict == "passed"
        assert example.prompt[0]["content"] == instructions[response.parent_id].text
        assert example.completion[0]["content"] == response.text
        assert example.lineage["instruction"] == response.parent_id
    assert len({responses[e.parent_id].parent_id for e in examples}) == len(examples), "one per instruction"

    train = step_dir(store, "r0/train")
    assert (train / "model" / "config.json").exists() and (train / "model" / "tokenizer_config.json").exists()
    for name in ("base/eval", "r0/eval"):
        scores = json.loads((step_dir(store, name) / "scores.json").read_text())
        assert set(scores) == {"humaneval", "mbpp"} and scores["humaneval"]["n_tasks"] == 3
    [run_dir] = list((tmp_path / "runs" / "tiny").iterdir())
    report = (run_dir / "report.md").read_text()
    for heading in ("Funnel", "Execution verdicts", "EvalPlus pass@1", "Wall time"):
        assert heading in report
    assert "v0.1.10" in report and "v0.2.0" in report, "the eval table names the data it scored against"
    assert (run_dir / "funnel.png").exists() and (run_dir / "config.json").exists()
    assert "sca.main" in (run_dir / "command.txt").read_text()
    assert list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb")), "the pipeline run is logged offline"
    from datasets import load_from_disk

    shared = load_from_disk(str(run_dir / "share" / "dataset"))
    assert sorted(shared["id"]) == sorted(e.id for e in examples) and "execution_id" in shared.column_names
    assert "## Funnel" in (run_dir / "share" / "hub" / "dataset" / "README.md").read_text()
    assert "## Evaluation" in (run_dir / "share" / "hub" / "model" / "README.md").read_text()
    assert not re.search(r"\bINFO\b(?! sca\.)", first.stdout + first.stderr), "libraries' INFO lines stay in logs"
    assert "Saving the dataset" not in first.stdout + first.stderr, "nor datasets' progress bars"

    again = sca_main(tmp_path, tiny_model_dir, server_url)
    assert again.returncode == 0
    assert ran_steps(again.stderr) == set(), "a second identical run is all cache hits"
    assert again.stderr.count("skip (cached)") == len(STEPS)

    knob = sca_main(tmp_path, tiny_model_dir, server_url, "generate.responses.sampling.temperature=0.2")
    assert knob.returncode == 0
    assert ran_steps(knob.stderr) == {"r0/responses", "r0/executions", "r0/sft_data", "r0/train", "r0/eval"}
