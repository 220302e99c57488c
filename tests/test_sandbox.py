"""The sandbox's verdicts, tiers, benchmark mode, codec and the resumable ``execute`` step."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from sca.config import SandboxConfig
from sca.io import SUCCESS, iter_records
from sca.params import type_name
from sca.records import Execution, Response, make_id, to_json
from sca.sandbox import BenchTask, Sandbox, SandboxUnavailable, execute_programs, probe
from sca.sandbox import step as execute_step
from sca.sandbox.codec import NonPlainOutput, decode, encode, equal
from sca.sandbox.tiers import C_WARNING, require
from sca.step import StepContext, run_shard

FAST = SandboxConfig(timeout_s=1.0, rerun_timeouts=0, workers=2)
ADD = "def add(a, b):\n    return a + b\n"


@pytest.fixture
def force_tier(monkeypatch: pytest.MonkeyPatch) -> Any:
    def force(tier: str) -> None:
        monkeypatch.setenv("SCA_SANDBOX_FORCE_TIER", tier)
        probe.cache_clear()

    yield force
    probe.cache_clear()


# --- codec ---------------------------------------------------------------------------------------------
def test_codec_round_trips_exact_types() -> None:
    value = {"a": (1, 2.5, None), 3: [True, {1, 2}], "n": float("inf"), "b": b"\x00", "c": 1j, "f": frozenset({1})}
    back = decode(json.loads(json.dumps(encode(value))))
    assert back == value and type(back[3][1]) is set and type(back["a"]) is tuple and type(back["f"]) is frozenset


@pytest.mark.parametrize("bad", [type("I", (int,), {})(1), object(), type("F", (float,), {})(1.0)])
def test_codec_rejects_non_plain_values(bad: Any) -> None:
    with pytest.raises(NonPlainOutput):
        encode([1, bad])


def test_equal_uses_float_closeness_only_for_floats() -> None:
    assert equal(0.1 + 0.2, 0.3) and equal([1.0, 2.0000000001], [1.0, 2.0]) and equal(1.05, 1.0, atol=0.1)
    assert not equal(1.1, 1.0) and not equal(True, 1.0) and not equal("1", 1) and not equal((1.0,), [1.0])
    assert equal(float("nan"), float("nan")) and equal({1: "a"}, {1: "a"})


# --- filter mode ------------------------------------------------------------------------------------------
def test_filter_verdicts_in_order() -> None:
    programs = [
        ADD + "assert add(2, 3) == 5\n",
        ADD + "assert add(2, 3) == 6, 'off by one'\n",
        "import json\nclass Box:\n    def __init__(self, v):\n        self.v = v\n"
        "def dump(b):\n    return json.dumps(helper(b.v))\ndef helper(v):\n    return {'v': v}\n"
        "assert dump(Box(1)) == '{\"v\": 1}'\n",
        "def f():\n    return {}['missing']\nf()\n",
        "import sys\nsys.stderr.write('dying\\n')\nraise RuntimeError('boom')\n",
    ]
    outs = execute_programs(programs, FAST)
    assert [o.verdict for o in outs] == ["passed", "failed", "passed", "error", "error"]
    assert outs[1].error_type == "AssertionError" and "off by one" in outs[1].detail
    assert outs[3].error_type == "KeyError"
    assert outs[4].error_type == "RuntimeError" and "dying" in outs[4].detail
    assert all(o.tier == probe().tier and o.duration_s > 0 for o in outs)


def test_timeouts_are_rerun_before_the_verdict_is_final(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = Sandbox._observe

    def counting(self: Sandbox, job: dict[str, Any]) -> dict[str, Any]:
        calls.append(job["code"])
        return original(self, job)

    monkeypatch.setattr(Sandbox, "_observe", counting)
    cfg = SandboxConfig(timeout_s=0.5, rerun_timeouts=1, workers=1)
    outs = execute_programs(["import time\ntime.sleep(60)\n", ADD + "assert add(1, 1) == 2\n"], cfg)
    assert [o.verdict for o in outs] == ["timeout", "passed"]
    assert len(calls) == 3  # the timeout ran twice, the pass once


# --- tiers --------------------------------------------------------------------------------------------------
def test_min_tier_is_enforced(force_tier: Any) -> None:
    force_tier("C")
    with pytest.raises(SandboxUnavailable, match="min_tier=B"):
        Sandbox(SandboxConfig(min_tier="B", workers=1))
    assert "NOT a security boundary" in probe().describe() and "NOT" in C_WARNING


def test_forcing_a_stronger_tier_than_available_is_refused(force_tier: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    force_tier("Z")
    with pytest.raises(SandboxUnavailable, match="SCA_SANDBOX_FORCE_TIER"):
        require("C")


def test_tier_c_still_judges_and_records_its_tier(force_tier: Any) -> None:
    force_tier("C")
    outs = execute_programs(
        [ADD + "assert add(1, 1) == 2\n", "while True:\n    pass\n", "import os\nos._exit(0)\n"], FAST
    )
    assert [(o.verdict, o.tier) for o in outs] == [("passed", "C"), ("timeout", "C"), ("error", "C")]


def test_worker_death_is_infra_never_a_failed_sample(force_tier: Any) -> None:
    # Only tier C lets a program kill its worker; the supervisor must retry, replace the worker and
    # finally say "infra", and the pool must keep working.
    force_tier("C")
    cfg = SandboxConfig(timeout_s=2.0, rerun_timeouts=0, infra_retries=1, workers=1)
    with Sandbox(cfg) as sb:
        outs = sb.run_filter(
            ["import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n", ADD + "assert add(1, 1) == 2\n"]
        )
    assert outs[0].verdict == "infra" and outs[1].verdict == "passed"


@pytest.mark.timeout(120)
def test_a_worker_that_cannot_be_replaced_fails_the_run_instead_of_hanging(
    force_tier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    force_tier("C")
    cfg = SandboxConfig(timeout_s=2.0, rerun_timeouts=0, infra_retries=2, workers=1)
    with Sandbox(cfg) as sb:

        def no_more_workers() -> Any:
            raise OSError("no more processes")

        monkeypatch.setattr(sb, "_spawn", no_more_workers)
        with pytest.raises(SandboxUnavailable, match="could not be started: no more processes"):
            sb.run_filter(["import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n", ADD])


# --- benchmark mode ----------------------------------------------------------------------------------------
def test_benchmark_mode_compares_outside_with_tolerance() -> None:
    code = "import time\ndef f(x):\n    if x == 3:\n        time.sleep(60)\n    if x == 2:\n        raise ValueError(x)\n    return x / 3\n"
    tasks = [
        BenchTask(code, "f", [[1], [0]], [0.3333333333, 0.0]),
        BenchTask(code, "f", [[1]], [0.34], atol=0.01),
        BenchTask(code, "f", [[1], [2], [3], [1]], [1 / 3, 0, 1, 1 / 3], timeout_s=0.7),
        BenchTask(code, "g", [[1]], [1]),
        BenchTask(code, "f", [[1]], [0.5]),
    ]
    with Sandbox(FAST) as sb:
        outs = sb.run_benchmark(tasks)
    assert outs[0].verdict == "passed" and outs[1].verdict == "passed"
    assert outs[2].per_input == ["passed", "error:ValueError", "timeout", "timeout"] and outs[2].verdict == "error"
    assert outs[3].verdict == "error" and outs[3].per_input == ["error:KeyError"]
    assert outs[4].verdict == "failed"


# --- the execute step ------------------------------------------------------------------------------------
def _responses(tmp_path: Path) -> tuple[Path, list[Response]]:
    src = tmp_path / "responses"
    src.mkdir()
    rows = [
        ("ok", ADD, "assert add(1, 2) == 3"),
        ("wrong", "def add(a, b):\n    return a - b\n", "assert add(1, 2) == 3"),
        ("untested", ADD, "  \n"),
        ("loop", "def add(a, b):\n    while True:\n        pass\n", "assert add(1, 2) == 3"),
        ("boom", ADD, "raise KeyError('k')"),
    ]
    rs = [Response(id=make_id(n), parent_id="i", sample=0, text="", solution=s, tests=t) for n, s, t in rows]
    (src / "records.jsonl").write_text("".join(to_json(r) + "\n" for r in rs))
    (src / SUCCESS).write_text("")
    return src, rs


def _ctx(tmp_path: Path, src: Path, **params: Any) -> StepContext:
    out = tmp_path / "exec"
    out.mkdir(exist_ok=True)
    sandbox = SandboxConfig(**{"timeout_s": 0.5, "rerun_timeouts": 0, "workers": 2, "batch_size": 2, **params})
    return StepContext("r0/executions", out, {"responses": src}, execute_step.ExecutionsParams(sandbox))


def test_step_writes_one_execution_per_response_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, rs = _responses(tmp_path)
    original = Sandbox.run_filter
    batches = []

    def crash_on_second_batch(self: Sandbox, programs: Any, on_done: Any = None) -> Any:
        batches.append(len(programs))
        if len(batches) == 2:
            raise KeyboardInterrupt("simulated crash half-way")
        return original(self, programs, on_done)

    monkeypatch.setattr(Sandbox, "run_filter", crash_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        execute_step.run(_ctx(tmp_path, src))
    monkeypatch.setattr(Sandbox, "run_filter", original)
    counters = execute_step.run(_ctx(tmp_path, src))
    records = [r for p in sorted((tmp_path / "exec").glob("records-*.jsonl")) for r in iter_records(p, Execution)]
    by_parent = {r.parent_id: r for r in records}
    assert len(records) == len(rs) == len(by_parent)  # nothing lost, nothing duplicated
    verdicts = {r.parent_id: r.verdict for r in records}
    assert verdicts == {
        rs[0].id: "passed",
        rs[1].id: "failed",
        rs[2].id: "no_tests",
        rs[3].id: "timeout",
        rs[4].id: "error",
    }
    assert all(r.id == make_id(r.parent_id, "exec") and r.tier for r in records)
    assert counters["in"] == 5 and counters["out"] == 5
    assert {k: v for k, v in counters.items() if k.startswith("verdict_")} == {
        "verdict_passed": 1, "verdict_failed": 1, "verdict_no_tests": 1, "verdict_timeout": 1, "verdict_error": 1,
    }  # fmt: skip
    assert execute_step.run(_ctx(tmp_path, src)) == counters  # a finished step re-runs as a no-op


def test_step_fails_loudly_on_persistent_infra(tmp_path: Path, force_tier: Any) -> None:
    force_tier("C")
    src, rs = _responses(tmp_path)
    killer = Response(id=make_id("killer"), parent_id="i", sample=0, text="", solution="import os, signal",
                      tests="os.kill(os.getppid(), signal.SIGKILL)")  # fmt: skip
    with open(src / "records.jsonl", "a") as f:
        f.write(to_json(killer) + "\n")
    with pytest.raises(RuntimeError, match="sandbox failed repeatedly"):
        execute_step.run(_ctx(tmp_path, src, infra_retries=0))
    written = [r for p in (tmp_path / "exec").glob("records-*.jsonl") for r in iter_records(p, Execution)]
    assert killer.id not in {r.parent_id for r in written}  # no false verdict recorded


def test_step_rejects_unknown_sandbox_keys(tmp_path: Path) -> None:
    """A spec.json whose sandbox params hold a key the typed params lack (hand-edited, or another version's)."""
    src, _ = _responses(tmp_path)
    ctx = _ctx(tmp_path, src)
    params = {"sandbox": {**dataclasses.asdict(ctx.params.sandbox), "timeout_seconds": 3}}
    spec = {"name": ctx.name, "fn": "sca.sandbox.step:run", "params": params, "params_type": type_name(ctx.params),
            "inputs": {"responses": str(src)}, "num_shards": 1}  # fmt: skip
    (ctx.out / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="timeout_seconds"):
        run_shard(ctx.out)
