"""Libraries' output goes to each step's log file; the terminal keeps sca's bars, tables and one-line notices;
a failed child's one-line cause is printed last; run.verbose puts everything back on the terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARY_LINES = ("LIBRARY-INFO", "LIBRARY-STDOUT", "LIBRARY-FD2", "LIBRARY-GRANDCHILD", "LIBRARY-WARNING")

SCRIPT = """
import json, sys
from pathlib import Path
from sca.config import to_config
from sca.launch import StepFailed, make_launcher
from sca.logs import setup_orchestrator
from sca.step import Step
from sca.runner import run_plan
from tests.helpers.steps import NoisyParams
store, params, verbose = Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3] == "1"
cfg = to_config({"run": {"name": "t", "verbose": verbose}, "model": {"name_or_path": "m"}})
setup_orchestrator(store / "run", verbose)
step = Step("r0/noisy", "tests.helpers.steps:noisy", NoisyParams(**params), where="subprocess")
try:
    run_plan([step], store, launcher=make_launcher(cfg))
except StepFailed as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
"""


def orchestrate(tmp_path: Path, params: dict, verbose: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", SCRIPT, str(tmp_path), json.dumps(params), "1" if verbose else "0"]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)


def step_log(tmp_path: Path) -> Path:
    [log] = tmp_path.glob("r0/noisy-*/logs/shard-00000.log")
    return log


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="children reach the terminal through /proc")
def test_library_lines_go_to_the_step_log_and_sca_output_to_the_terminal(tmp_path: Path) -> None:
    proc = orchestrate(tmp_path, {"fail": False})
    assert proc.returncode == 0, proc.stderr
    terminal = proc.stdout + proc.stderr
    for line in LIBRARY_LINES:
        assert line not in terminal, line
    assert "r0/noisy bar: 100%" in terminal and "r0/noisy: counters" in terminal
    assert "r0/noisy: 1 warning line(s) from libraries in" in terminal
    log = step_log(tmp_path).read_text()
    for line in LIBRARY_LINES:
        assert line in log, line
    assert "r0/noisy bar" not in log, "sca's bar is on the terminal, not in the log"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="children reach the terminal through /proc")
def test_a_failed_child_prints_its_one_line_cause_last(tmp_path: Path) -> None:
    proc = orchestrate(tmp_path, {"fail": True})
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: step r0/noisy failed: ValueError: the model directory /nowhere has no config.json")
    assert "second line" not in last and str(step_log(tmp_path)) in last
    assert "Traceback" not in proc.stderr, "the traceback is in the step log"
    assert "Traceback" in step_log(tmp_path).read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="children reach the terminal through /proc")
def test_output_redirected_to_a_file_keeps_every_writer_lines(tmp_path: Path) -> None:
    """`> out.txt 2>&1`: the children append to the file; the orchestrator must not overwrite their lines."""
    out = tmp_path / "terminal.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(out, "w") as f:
        args = [sys.executable, "-c", SCRIPT, str(tmp_path / "s"), json.dumps({"fail": False}), "0"]
        proc = subprocess.run(args, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=120)
    assert proc.returncode == 0
    text = out.read_text()
    assert "r0/noisy bar: 100%" in text and "r0/noisy: counters" in text
    assert "1 warning line(s) from libraries" in text and "LIBRARY-INFO" not in text


def test_verbose_shows_everything(tmp_path: Path) -> None:
    proc = orchestrate(tmp_path, {"fail": False}, verbose=True)
    assert proc.returncode == 0, proc.stderr
    for line in LIBRARY_LINES:
        assert line in proc.stdout + proc.stderr, line


@pytest.mark.slow  # seeds + a vLLM engine on the tiny model: about a minute on 2 cores
def test_a_vllm_pipeline_keeps_library_lines_off_the_terminal(tmp_path: Path, tiny_model_dir: Path) -> None:
    import re

    from tests.conftest import BENCHMARKS

    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    args = [
        sys.executable, "-m", "sca.main", "experiment=tiny", f"paths.root={tmp_path}", f"paths.data={BENCHMARKS}",
        f"model.name_or_path={tiny_model_dir}", "generate.backend.name=vllm", "generate.backend.enforce_eager=true",
        "run.until=concepts", "logger.mode=offline",
    ]  # fmt: skip
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env={**env, "PYTHONPATH": str(ROOT)},
                          timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    terminal = (proc.stdout + proc.stderr).replace("\r", "\n").splitlines()
    foreign = [ln for ln in terminal if re.search(r"\bINFO\b", ln) and " INFO sca." not in ln]
    assert foreign == [], foreign[:5]
    assert not [ln for ln in terminal if ln.startswith("wandb:")], "W&B's banner stays off the terminal"
    assert any("r0/concepts" in ln and "100%" in ln for ln in terminal), "the step's bar reached the terminal"
    [log] = (tmp_path / "store").glob("r0/concepts-*/logs/shard-00000.log")
    assert re.search(r"INFO .*vllm|INFO \d\d-\d\d .*\[", log.read_text()), "vLLM's INFO lines are in the step log"
