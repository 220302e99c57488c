"""A paper-scale rehearsal on CPU (issue 14): ``experiment=codeqwen7b`` through ``launcher=slurm`` on submitit's
local executor (real job subprocesses), with only what a CPU cannot do swapped out: the tiny model for
CodeQwen1.5-7B, the scripted OpenAI-compatible server for generation (a random tiny model writes nothing that
parses or passes), a local dataset laid out like The Stack for the hub one, and sizes shrunk. Every other
setting is the paper config's: the judge, the seeds filters and type check, decontamination, full SFT under
DeepSpeed ZeRO-3, EvalPlus grading as in 2024. Minutes: marked slow. Its funnel is in docs/capacity.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from sca.io import read_records
from sca.records import Seed
from tests.conftest import BENCHMARKS
from tests.test_e2e_tiny import ROOT, ran_steps, step_dir

pytestmark = pytest.mark.slow

# Real modules as rows, one file per row as in The Stack; twelve rows in four data files.
MODULES = ["textwrap.py", "fnmatch.py", "bisect.py", "heapq.py", "statistics.py", "base64.py", "quopri.py",
           "calendar.py", "difflib.py", "html/__init__.py", "ipaddress.py", "string.py"]  # fmt: skip
STEPS = ["mined_seeds", "seeds", "judged_seeds", "base/eval", "r0/concepts", "r0/instructions", "r0/responses",
         "r0/executions", "r0/sft_data", "r0/train", "r0/eval"]  # fmt: skip
SHARDED = ["mined_seeds", "r0/concepts", "r0/instructions", "r0/responses", "r0/executions"]
LIMIT = 8


def local_stack(root: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    (root / "data" / "python").mkdir(parents=True)
    (root / "data" / "javascript").mkdir(parents=True)
    for i in range(4):
        rows = MODULES[i * 3 : i * 3 + 3]
        table = pa.table({"content": [(stdlib / m).read_text() for m in rows], "path": rows})
        pq.write_table(table, root / "data" / "python" / f"train-{i:05d}-of-00004.parquet")
    pq.write_table(pa.table({"content": ["export const x = 1;"], "path": ["x.js"]}),
                   root / "data" / "javascript" / "train-00000-of-00001.parquet")  # fmt: skip
    return root


def rehearsal_overrides(root: Path, tiny: Path, url: str, dataset: Path) -> list[str]:
    return [
        "experiment=codeqwen7b",
        f"paths.root={root}", f"paths.data={BENCHMARKS}", "logger.mode=offline",
        # the model: the tiny one, in float32 (CPU); generation answered by the scripted server
        f"model.name_or_path={tiny}", "model.dtype=float32",
        "generate.backend.name=openai", f"generate.backend.base_url={url}",
        # the source: source=hf as in the paper, a local dataset with The Stack's layout
        f"generate.seeds.hf_dataset={dataset}", "generate.seeds.hf_data_dir=data/python",
        f"generate.seeds.limit={LIMIT}",
        # sizes
        "generate.responses.sampling.n=3", "train.max_steps=2", "train.global_batch_size=2",
        "train.per_device_batch_size=1", "eval.limit=3", "eval.max_tokens=32",
        # SLURM on submitit's local executor: two shards per sharded step, one CPU "GPU" per node
        "launcher=slurm", "launcher.cluster=local", "launcher.num_shards=2", "launcher.nnodes=1",
        "launcher.gpus_per_node=1", "launcher.time_min=30",
    ]  # fmt: skip


def funnel(store: Path) -> list[tuple[str, str, int]]:
    """(step, counter, value) rows of the counters that make the funnel, in pipeline order."""
    keys = {
        "mined_seeds": ["modules", "found", "candidates"],
        "seeds": ["dropped_duplicate", "dropped_contaminated", "dropped_typecheck", "dropped_near_duplicate", "kept"],
        "judged_seeds": ["judge_in", "judge_out", "dropped_limit", "kept"],
        "r0/concepts": ["in", "out"], "r0/instructions": ["in", "out"], "r0/responses": ["completions", "out"],
        "r0/executions": ["verdict_passed", "verdict_failed"], "r0/sft_data": ["records"],
    }  # fmt: skip
    rows = []
    for name, counters in keys.items():
        stats = json.loads((step_dir(store, name) / "stats.json").read_text())
        rows += [(name, k, int(stats.get(k, 0))) for k in counters]
    return rows


@pytest.mark.timeout(3000)  # ~20 min on two shared cores: job start-up, DeepSpeed on CPU
def test_codeqwen7b_rehearsal_through_slurm_local(tmp_path: Path, tiny_model_dir: Path, server_url: str) -> None:
    dataset = local_stack(tmp_path / "stack")
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"} | {"PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "sca.main", *rehearsal_overrides(tmp_path, tiny_model_dir, server_url, dataset)]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, timeout=2900)
    assert proc.returncode == 0, proc.stderr[-20000:]
    assert ran_steps(proc.stderr) == set(STEPS)
    store = tmp_path / "store"

    # The paper's settings reached the steps: judge, type check, decontamination, ZeRO-3 full SFT, 2024 grading.
    seeds_spec = json.loads((step_dir(store, "seeds") / "spec.json").read_text())
    assert seeds_spec["params"]["seeds"]["typecheck"] and seeds_spec["params"]["seeds"]["decontaminate"]
    assert seeds_spec["params"]["seeds"]["limit"] == 0, "the judge applies the limit"
    train_spec = json.loads((step_dir(store, "r0/train") / "spec.json").read_text())
    assert train_spec["params"]["train"]["method"] == "full"
    assert train_spec["params"]["train"]["deepspeed"].endswith("zero3.json")
    eval_spec = json.loads((step_dir(store, "r0/eval") / "spec.json").read_text())
    assert eval_spec["params"]["eval"]["float_tolerance"] is False

    # Sharded steps ran as two submitit jobs each; every step finished.
    for name in STEPS:
        out = step_dir(store, name)
        assert (out / "_SUCCESS").exists(), name
        shards = 2 if name in SHARDED else 1
        assert len(list(out.glob("_DONE-*"))) == shards, name
    assert len(list((tmp_path / "submitit").glob("*/*_result.pkl"))) >= len(STEPS) + len(SHARDED)

    rows = funnel(store)
    print("\n".join(f"| {name} | {key} | {value} |" for name, key, value in rows))
    value = {(name, key): v for name, key, v in rows}
    assert value[("mined_seeds", "modules")] == len(MODULES), "the data_dir kept the JavaScript file out"
    assert value[("seeds", "kept")] == value[("judged_seeds", "judge_in")] > LIMIT
    assert value[("judged_seeds", "kept")] == LIMIT == len(read_records(step_dir(store, "judged_seeds"), Seed))
    assert value[("r0/executions", "verdict_passed")] > 0 and value[("r0/sft_data", "records")] > 0
    for name in ("base/eval", "r0/eval"):
        scores = json.loads((step_dir(store, name) / "scores.json").read_text())
        assert scores["humaneval"]["n_tasks"] == 3 and scores["mbpp"]["n_tasks"] == 3
