"""The ``execute`` step: every response's solution run with its own tests, one Execution record each.

params  :class:`ExecutionsParams` (the sandbox section)
inputs  {"responses": <step dir of Response records>}
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sca.config import SandboxConfig
from sca.progress import bar, print_counters
from sca.records import Execution, Response, make_id
from sca.sandbox.program import stub_solution
from sca.sandbox.supervisor import Sandbox, iter_chunks
from sca.sandbox.verdicts import Outcome
from sca.step import StepContext


@dataclass(frozen=True)
class ExecutionsParams:
    sandbox: SandboxConfig


def program_of(response: Response) -> str:
    """The response's solution followed by its tests, as one script (tests run at module level)."""
    return response.solution.rstrip() + "\n\n\n" + response.tests.strip() + "\n"


def stub_program(response: Response) -> str | None:
    """The response's tests run against a stub of its solution (every function/method returns None)."""
    stub = stub_solution(response.solution)
    return None if stub is None else stub.rstrip() + "\n\n\n" + response.tests.strip() + "\n"


def check_strength(sandbox: Sandbox, passed: list[Response], tick: Any = None) -> dict[str, bool | None]:
    """response id -> strong_tests for passing responses: True when the tests fail against the stub."""
    stubs = {r.id: p for r in passed if (p := stub_program(r)) is not None}
    outcomes = sandbox.run_filter(list(stubs.values()), tick)
    strong: dict[str, bool | None] = {r.id: None for r in passed}
    for rid, out in zip(stubs, outcomes, strict=True):
        strong[rid] = None if out.verdict == "infra" else out.verdict != "passed"
    return strong


def to_record(response: Response, outcome: Outcome, strong_tests: bool | None = None) -> Execution:
    return Execution(
        id=make_id(response.id, "exec"),
        parent_id=response.id,
        verdict=outcome.verdict,
        error_type=outcome.error_type,
        duration_s=outcome.duration_s,
        tier=outcome.tier,
        detail=outcome.detail[-1000:],
        strong_tests=strong_tests,
    )


def run(ctx: StepContext[ExecutionsParams]) -> dict[str, float]:
    config = ctx.params.sandbox
    batch_size = config.batch_size
    responses = [r for r in ctx.read("responses", Response) if ctx.mine(r.id)]
    with ctx.journal() as journal:
        todo = [r for r in responses if r.id not in journal.done]
        progress = bar(len(responses), f"{ctx.name} (sandbox)", unit="prog", initial=len(responses) - len(todo))
        lock = threading.Lock()

        def tick() -> None:
            with lock:
                progress.update(1)

        with Sandbox(config) as sandbox:
            progress.set_postfix_str(f"tier {sandbox.tier}")
            for batch in iter_chunks(todo, batch_size):
                runnable = [r for r in batch if r.tests.strip()]
                outcomes = dict(
                    zip(
                        (r.id for r in runnable),
                        sandbox.run_filter([program_of(r) for r in runnable], tick),
                        strict=True,
                    )
                )
                strong: dict[str, bool | None] = {}
                if config.stub_check:
                    passed = [r for r in runnable if outcomes[r.id].verdict == "passed"]
                    strong = check_strength(sandbox, passed)
                records, done, infra = [], [], []
                for r in batch:
                    outcome = outcomes.get(r.id) or Outcome("no_tests", "", 0.0, sandbox.tier, "response has no tests")
                    if r.id not in outcomes:
                        tick()
                    if outcome.verdict == "infra":
                        infra.append(r.id)  # never recorded: a sandbox failure is not the sample's verdict
                        continue
                    records.append(to_record(r, outcome, strong.get(r.id)))
                    done.append(r.id)
                counts = Counter({"in": len(done), "out": len(records)})
                counts.update(f"verdict_{rec.verdict}" for rec in records)
                if config.stub_check:  # the share of passes whose tests cannot tell a stub from a solution
                    counts["stub_checked"] += sum(rec.strong_tests is not None for rec in records)
                    counts["stub_weak_tests"] += sum(rec.strong_tests is False for rec in records)
                journal.commit(done, records, dict(counts))
                if infra:
                    progress.close()
                    raise RuntimeError(
                        f"{ctx.name}: the sandbox failed repeatedly on {len(infra)} response(s) (first: {infra[0]}); "
                        "their verdicts were not recorded. Finished ones are kept: fix the sandbox (see the log) and "
                        "re-run to resume."
                    )
        progress.close()
        counters: dict[str, float] = dict(journal.counters)
    print_counters(f"{ctx.name}: verdicts", counters)
    if counters.get("stub_checked"):
        share = counters.get("stub_weak_tests", 0) / counters["stub_checked"]
        print_counters(f"{ctx.name}: test strength", {"weak_tests_share_of_passed": round(share, 4)})
    return counters
