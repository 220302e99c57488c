"""Verdicts, judged in the supervisor from what the worker observed (never from the program's stdout).

Filter mode (SelfCodeAlign): passed <=> the completion record (written by the harness's audit hook once
the whole program, tests included, ran) is present and authentic, says that at least one check or test
ran and none failed, the child exited 0 and nobody killed it. docs/sandbox.md has the verdict table.
Benchmark mode (EvalPlus): the child's outputs are compared here with expected values it never saw.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass, field
from typing import Any

from sca.sandbox import codec

VERDICTS = ("passed", "failed", "error", "timeout", "memory", "crash", "no_tests", "infra")


@dataclass(frozen=True)
class Outcome:
    verdict: str  # one of VERDICTS
    error_type: str = ""  # exception class (or sandbox reason) for error/failed
    duration_s: float = 0.0
    tier: str = ""
    detail: str = ""  # short human-readable reason + stderr tail


@dataclass(frozen=True)
class BenchOutcome:
    verdict: str  # overall: passed only if every input passed
    per_input: list[str] = field(default_factory=list)  # passed | failed | error:<Type> | timeout | ...
    duration_s: float = 0.0
    tier: str = ""
    detail: str = ""


class InfraError(RuntimeError):
    """The sandbox itself failed (worker died, protocol error, setup failure): retry, never a verdict."""


def parse_records(raw: str, nonce: str) -> list[dict[str, Any]]:
    """Authentic records from the result channel. A record without our nonce is a forgery attempt."""
    records = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError("garbled result record") from None
        if not isinstance(rec, dict):
            raise ValueError("garbled result record")
        if "setup_error" in rec:
            raise InfraError(f"sandbox setup failed in the child: {rec['setup_error']}")
        if rec.get("nonce") != nonce:
            raise ValueError("result record without the run's nonce (forged)")
        records.append(rec)
    return records


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _killed(obs: dict[str, Any], limit_s: float) -> tuple[str, str, str] | None:
    """Verdicts that come from the outside (deadline, caps, signals), before looking at any record."""
    if obs["killed"] == "timeout":
        return "timeout", "", f"killed at the {limit_s:g}s wall-clock limit"
    if obs["killed"] == "output":
        return "error", "OutputLimitExceeded", "stdout/stderr/result exceeded the cap; killed"
    if obs["killed"] == "disk":
        return "error", "DiskQuotaExceeded", "work directory exceeded the disk quota; killed"
    sig = obs["signal"]
    if sig is not None:
        if sig in (signal.SIGXCPU, signal.SIGKILL) and obs["cpu"] >= int(limit_s) + 1:
            return "timeout", "", f"CPU-time limit ({_signal_name(sig)})"
        return "crash", _signal_name(sig), f"killed by {_signal_name(sig)}"
    return None


def judge_filter(obs: dict[str, Any], nonce: str, limit_s: float, tier: str) -> Outcome:
    tail = obs["stderr"][-500:]

    def out(verdict: str, error_type: str = "", why: str = "") -> Outcome:
        detail = (why + ("\n" + tail if tail else "")).strip()
        return Outcome(verdict, error_type, round(obs["duration"], 4), tier, detail)

    killed = _killed(obs, limit_s)
    if killed:
        return out(*killed)
    try:
        records = parse_records(obs["result"], nonce)
    except ValueError as e:
        return out("error", "ForgedRecord", str(e))
    if len(records) != 1:
        if not records:
            return out("error", "EarlyExit", f"exited (code {obs['exit']}) before the end: no completion record")
        return out("error", "ForgedRecord", f"{len(records)} completion records")
    rec = records[0]
    if obs["exit"] != 0:
        return out("crash", "ExitCode", f"exit code {obs['exit']} after the completion record")
    status, etype, msg = rec.get("status"), rec.get("type", ""), rec.get("msg", "")
    if status == "ok":
        return _judge_completed(rec, out)
    if status == "sys_exit":
        return out("error", "SystemExit", f"sys.exit({msg}) before the end")
    if etype == "AssertionError":
        return out("failed", "AssertionError", msg)
    if etype == "MemoryError":
        return out("memory", "MemoryError", msg)
    return out("error", str(etype), msg)


def _judge_completed(rec: dict[str, Any], out: Any) -> Outcome:
    """The program ran to its end: what its unittest runs and checks say."""
    counts = {k: rec.get(k) for k in ("checks", "tests", "failures", "errors")}
    if not all(isinstance(v, int) for v in counts.values()):
        return out("error", "ForgedRecord", "completion record without counts")  # type: ignore[no-any-return]
    if counts["failures"]:
        return out("failed", "AssertionError", f"{counts['failures']} of {counts['tests']} test(s) failed")  # type: ignore[no-any-return]
    if counts["errors"]:
        why = f"{counts['errors']} of {counts['tests']} test(s) raised"
        return out("error", str(rec.get("type") or "TestError"), why)  # type: ignore[no-any-return]
    if not counts["checks"] and not counts["tests"]:
        return out("no_tests", "NoChecksRun", "ran to its end without executing any assertion or test")  # type: ignore[no-any-return]
    return out("passed")  # type: ignore[no-any-return]


def judge_bench(
    obs: dict[str, Any], nonce: str, limit_s: float, tier: str, expected: list[Any], atol: float
) -> BenchOutcome:
    n = len(expected)
    duration = round(obs["duration"], 4)
    try:
        records = parse_records(obs["result"], nonce)
    except ValueError as e:
        return BenchOutcome("error", ["error:ForgedRecord"] * n, duration, tier, str(e))
    per = ["missing"] * n
    setup = next((r for r in records if r.get("status") == "setup"), None)
    if setup is not None:
        return BenchOutcome("error", [f"error:{setup.get('type')}"] * n, duration, tier, setup.get("msg", ""))
    for rec in records:
        if rec.get("status") == "ok" and "i" not in rec:
            continue  # the end marker
        i = rec.get("i")
        if not isinstance(i, int) or not 0 <= i < n or per[i] != "missing":
            return BenchOutcome("error", ["error:ForgedRecord"] * n, duration, tier, "bad output record")
        if "out" in rec:
            try:
                ok = codec.equal(codec.decode(rec["out"]), expected[i], atol)
            except (ValueError, TypeError, KeyError):
                ok = False
            per[i] = "passed" if ok else "failed"
        else:
            per[i] = "memory" if rec.get("type") == "MemoryError" else f"error:{rec.get('type')}"
    killed = _killed(obs, limit_s)
    rest = killed[0] if killed else "error:EarlyExit"
    per = [rest if p == "missing" else p for p in per]  # a hang on input k fails k..n
    verdict = "passed" if all(p == "passed" for p in per) else next(p for p in per if p != "passed").split(":")[0]
    detail = killed[2] if killed else ""
    return BenchOutcome(verdict, per, duration, tier, (detail + "\n" + obs["stderr"][-300:]).strip())
