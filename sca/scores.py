"""How sure an eval score is, and whether base -> tuned changed anything beyond noise.

On 20 tasks one solved task is 0.05: the report shows every pass@1 with its task count and a 95% interval,
and compares models task by task.

- Interval of a pass@1 over n tasks: with one sample per task it is a binomial proportion, and the interval
  is Wilson's score interval (scipy's ``binomtest(...).proportion_ci(method="wilson")``), which stays inside
  [0, 1] and is not empty at 0 of n (0/20 -> [0, 0.16]). With several samples per task the per-task rates
  are not 0/1, so the interval is a percentile bootstrap over tasks (scipy.stats.bootstrap, seeded).
- Paired comparison: both models answer the same tasks, so what matters is the tasks on which they disagree.
  A task counts as solved by a model when most of its samples pass. ``gained`` are the tasks only the tuned
  model solves, ``lost`` those only the base model solves; under "no change" each discordant task is a fair
  coin, so the two-sided exact binomial test on gained of (gained + lost) is McNemar's exact test. A p-value
  of 0.05 or more is reported as "within noise".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sca.records import EvalSample

ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def task_rates(records: Iterable[EvalSample], plus: bool) -> dict[tuple[str, str], float]:
    """(benchmark, task_id) -> share of its samples that pass (plus: the base tests and the extra tests)."""
    passed: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for r in records:
        ok = r.base_verdict == "pass" and (not plus or r.plus_verdict == "pass")
        passed[(r.benchmark, r.task_id)].append(ok)
    return {key: sum(v) / len(v) for key, v in passed.items()}


def interval(rates: Sequence[float]) -> Interval:
    """pass@1 over tasks with its 95% interval (Wilson for 0/1 rates, bootstrap over tasks otherwise)."""
    from scipy import stats

    n = len(rates)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    mean = sum(rates) / n
    if all(r in (0.0, 1.0) for r in rates):
        ci = stats.binomtest(int(sum(rates)), n).proportion_ci(confidence_level=1 - ALPHA, method="wilson")
        return Interval(mean, float(ci.low), float(ci.high), n)
    if len(set(rates)) == 1:  # no spread to resample
        return Interval(mean, mean, mean, n)
    boot = stats.bootstrap(
        (list(rates),), lambda x: sum(x) / len(x), confidence_level=1 - ALPHA, n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile", rng=0, vectorized=False,
    )  # fmt: skip
    return Interval(mean, float(boot.confidence_interval.low), float(boot.confidence_interval.high), n)


@dataclass(frozen=True)
class Paired:
    benchmark: str
    tasks: int
    both: int
    neither: int
    gained: list[str]  # solved by the tuned model only
    lost: list[str]  # solved by the base model only
    p_value: float

    @property
    def verdict(self) -> str:
        if not self.gained and not self.lost:
            return "no task changed"
        return "within noise" if self.p_value >= ALPHA else "beyond noise"


def paired(base: Mapping[tuple[str, str], float], tuned: Mapping[tuple[str, str], float]) -> list[Paired]:
    """Task-by-task comparison per benchmark, over the tasks both models were scored on."""
    from scipy import stats

    out = []
    for bench in sorted({b for b, _ in base} & {b for b, _ in tuned}):
        keys = sorted(k for k in base.keys() & tuned.keys() if k[0] == bench)
        solved_base = {k for k in keys if base[k] > 0.5}
        solved_tuned = {k for k in keys if tuned[k] > 0.5}
        gained = [k[1] for k in sorted(solved_tuned - solved_base, key=task_order)]
        lost = [k[1] for k in sorted(solved_base - solved_tuned, key=task_order)]
        discordant = len(gained) + len(lost)
        p = float(stats.binomtest(len(gained), discordant, 0.5).pvalue) if discordant else 1.0
        both = len(solved_base & solved_tuned)
        out.append(Paired(bench, len(keys), both, len(keys) - both - discordant, gained, lost, p))
    return out


def task_order(key: tuple[str, str]) -> tuple[str, str, int, str]:
    """(benchmark, task_id) in benchmark order: HumanEval/2 before HumanEval/10."""
    prefix, _, number = key[1].rpartition("/")
    return (key[0], prefix, int(number), "") if number.isdigit() else (key[0], prefix, 0, key[1])
