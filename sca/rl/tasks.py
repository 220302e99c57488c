"""The RL task pool: the round's curated instructions the model solves only sometimes, with verified tests.

A task is an SFT example of the round (so whatever curation removed: failed, malformed, duplicate or
contaminated, is not here either) plus the tests of the response it was made from, which passed with
that response's solution. It is learnable when the instruction's sampled solutions passed at a rate
strictly between 0 and 1: at 1 every rollout of a group would get the same reward, and GRPO learns
nothing from a group without spread; at 0 the tests themselves are suspect. Tests that a stub solution
also passed (``Execution.strong_tests is False``) would reward doing nothing, so those tasks are always
dropped; ``rl.strong_tests_only`` keeps only tasks whose tests were shown to fail on a stub.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from sca.records import Execution, Response, SFTExample, make_id


@dataclass(frozen=True, slots=True, kw_only=True)
class RLTask:
    """One prompt of the RL stage, in TRL's conversational format, and the tests that judge it."""

    id: str
    parent_id: str  # SFTExample.id
    prompt: list[dict[str, str]]
    tests: str
    pass_rate: float  # share of the instruction's sampled responses that passed their own tests
    split: str  # train | holdout


class EmptyPool(ValueError):
    pass


def pass_rates(responses: Sequence[Response], executions: Sequence[Execution]) -> dict[str, float]:
    """Instruction id -> share of its executed samples whose verdict is ``passed``."""
    verdict = {e.parent_id: e.verdict for e in executions}
    runs: dict[str, list[bool]] = defaultdict(list)
    for r in responses:
        if r.id in verdict:
            runs[r.parent_id].append(verdict[r.id] == "passed")
    return {inst: sum(v) / len(v) for inst, v in runs.items()}


def build_pool(
    examples: Sequence[SFTExample],
    responses: Sequence[Response],
    executions: Sequence[Execution],
    *,
    holdout: float,
    max_tasks: int,
    strong_tests_only: bool,
    seed: int,
) -> tuple[list[RLTask], Counter[str]]:
    """The learnable tasks, each marked train or holdout (a seeded split), and why the others were dropped."""
    by_id = {r.id: r for r in responses}
    execution_of = {e.parent_id: e for e in executions}
    rates = pass_rates(responses, executions)
    counts: Counter[str] = Counter(sft_examples=len(examples))
    tasks: list[RLTask] = []
    for ex in examples:
        response, execution = by_id.get(ex.parent_id), execution_of.get(ex.parent_id)
        if response is None or execution is None:
            raise ValueError(
                f"SFT example {ex.id} comes from response {ex.parent_id}, which the responses/executions inputs "
                "do not hold; the inputs come from different runs (check the step dependencies)"
            )
        rate = rates[response.parent_id]
        reason = _drop_reason(rate, execution.strong_tests, strong_tests_only)
        if reason:
            counts[f"dropped_{reason}"] += 1
            continue
        tasks.append(
            RLTask(
                id=make_id(ex.id, "rl"),
                parent_id=ex.id,
                prompt=list(ex.prompt),
                tests=response.tests,
                pass_rate=rate,
                split="train",
            )
        )
    tasks.sort(key=lambda t: make_id(str(seed), t.id))  # a seeded shuffle that ignores input order
    if max_tasks > 0 and len(tasks) > max_tasks:
        counts["dropped_over_max_tasks"] += len(tasks) - max_tasks
        tasks = tasks[:max_tasks]
    held = _holdout_size(len(tasks), holdout)
    tasks = [_with_split(t, "holdout") for t in tasks[:held]] + tasks[held:]
    counts["tasks_train"] = len(tasks) - held
    counts["tasks_holdout"] = held
    return sorted(tasks, key=lambda t: t.id), counts


def _drop_reason(rate: float, strong: bool | None, strong_only: bool) -> str:
    if rate >= 1.0:
        return "always_passed"
    if rate <= 0.0:  # not reachable from curated data (its response passed); kept for hand-made inputs
        return "never_passed"
    if strong is False:
        return "weak_tests"
    if strong_only and strong is None:
        return "tests_unchecked"
    return ""


def _holdout_size(n: int, share: float) -> int:
    """At least one held-out task when there is a share to hold and a task left to train on."""
    if share <= 0 or n < 2:
        return 0
    return min(n - 1, max(1, round(n * share)))


def _with_split(task: RLTask, split: str) -> RLTask:
    return replace(task, split=split)


def require_tasks(tasks: Sequence[RLTask], counts: Mapping[str, int], strong_only: bool) -> None:
    """Fail, naming what to change, when nothing is left to train on."""
    if any(t.split == "train" for t in tasks):
        return
    hint = (
        "run the sandbox's test-strength check, or set rl.strong_tests_only=false"
        if strong_only and counts.get("dropped_tests_unchecked")
        else "sample more responses per instruction (generate.responses.sampling.n) or use more seeds"
    )
    raise EmptyPool(
        f"no learnable RL task (pass rate strictly between 0 and 1): {dict(counts)}; {hint}, or set rl.enabled=false"
    )
