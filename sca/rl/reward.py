"""The RL reward: the sandbox's filter-mode verdict on the policy's program run with the task's own tests.

A rollout's reward is 1 when its program passes (the same verdict that admitted SFT data: the authentic
completion record, written after the tests ran, exit code 0), plus ``format_weight`` when the answer is
one fenced python block that parses. Both terms are withheld when the sandbox saw tampering (a forged
completion record, an exit before the tests ran, ``sys.exit``, a non-zero exit after the record), so a
policy cannot earn anything by attacking the judge. A rollout the sandbox could not judge (its
infrastructure failed, after its own retries and one more here) gets ``None``: TRL then gives it no
advantage, so infrastructure noise neither rewards nor punishes the policy.

Rollouts are judged in one batch through the warm :class:`~sca.sandbox.Sandbox` pool, never a process
started per rollout.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sca.generate.prompting import ParseError, python_blocks
from sca.sandbox import Outcome, Sandbox

# error_type values of sca.sandbox.verdicts.judge_filter that mean the program fought the harness.
TAMPERING = frozenset({"ForgedRecord", "EarlyExit", "SystemExit", "ExitCode"})
NO_CODE = "no_code"


@dataclass(frozen=True)
class Judgement:
    verdict: str  # a sandbox verdict, or no_code (nothing to run)
    error_type: str
    formatted: bool

    @property
    def tampered(self) -> bool:
        return self.error_type in TAMPERING

    def reward(self, format_weight: float) -> float | None:
        if self.verdict == "infra":
            return None
        if self.tampered:
            return 0.0
        return float(self.verdict == "passed") + (format_weight if self.formatted else 0.0)


def completion_text(completion: Any) -> str:
    """TRL hands a conversational completion as a list of messages, a plain one as a string."""
    if isinstance(completion, str):
        return completion
    return "".join(str(m.get("content", "")) for m in completion if m.get("role", "assistant") == "assistant")


def solution_of(text: str) -> tuple[str, bool]:
    """The program to test (the first python block) and whether the answer is well formed (one block that parses)."""
    try:
        blocks = python_blocks(text)
    except ParseError:  # a fence left open: the answer was cut at the length limit
        return "", False
    if not blocks:
        return "", False
    code = blocks[0].code
    try:
        ast.parse(code)
    except SyntaxError:
        return code, False
    return code, len(blocks) == 1


def program(solution: str, tests: str) -> str:
    """Solution then tests, one script, as the executions step assembles a response's program."""
    return solution.rstrip() + "\n\n\n" + tests.strip() + "\n"


def judge(sandbox: Sandbox, completions: Sequence[str], tests: Sequence[str], infra_rounds: int = 1) -> list[Judgement]:
    """One Judgement per completion, in order; programs the sandbox failed on are re-run ``infra_rounds`` times."""
    parsed = [solution_of(c) for c in completions]
    todo = [i for i, (code, _) in enumerate(parsed) if code.strip()]
    outcomes: dict[int, Outcome] = {}
    for _ in range(1 + infra_rounds):
        if not todo:
            break
        got = sandbox.run_filter([program(parsed[i][0], tests[i]) for i in todo])
        outcomes.update(zip(todo, got, strict=True))
        todo = [i for i in todo if outcomes[i].verdict == "infra"]
    out = []
    for i, (_, formatted) in enumerate(parsed):
        o = outcomes.get(i)
        out.append(Judgement(o.verdict, o.error_type, formatted) if o else Judgement(NO_CODE, "", False))
    return out


class SandboxReward:
    """A TRL reward function (``reward_funcs=[SandboxReward(...)]``) that also logs the reward's components.

    ``history`` keeps every batch's rewards, in the order TRL passed the completions, so tests can check
    that what the trainer logs is what the sandbox judged.
    """

    __name__ = "sandbox"

    def __init__(self, sandbox: Sandbox, format_weight: float) -> None:
        self.sandbox = sandbox
        self.format_weight = format_weight
        self.history: list[list[float | None]] = []
        self.verdicts: Counter[str] = Counter()

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        tests: Sequence[str],
        log_metric: Callable[[str, float], None] | None = None,
        **_: Any,
    ) -> list[float | None]:
        judged = judge(self.sandbox, [completion_text(c) for c in completions], tests)
        rewards = [j.reward(self.format_weight) for j in judged]
        self.history.append(rewards)
        self.verdicts.update(j.verdict for j in judged)
        if log_metric is not None:
            for name, value in components(judged, self.format_weight).items():
                log_metric(name, value)
        return rewards


def components(judged: Sequence[Judgement], format_weight: float) -> dict[str, float]:
    """Shares of the batch behind the reward: passed, well formed, tampering, unjudged, no code."""
    n = max(len(judged), 1)
    scored = [j for j in judged if j.verdict != "infra"]
    return {
        "reward/pass_rate": sum(j.verdict == "passed" for j in scored) / max(len(scored), 1),
        "reward/format": format_weight * sum(j.formatted and not j.tampered for j in scored) / max(len(scored), 1),
        "reward/tampered": sum(j.tampered for j in judged) / n,
        "reward/infra": sum(j.verdict == "infra" for j in judged) / n,
        "reward/no_code": sum(j.verdict == NO_CODE for j in judged) / n,
    }
