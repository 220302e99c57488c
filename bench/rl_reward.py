"""RL reward throughput: judged rollouts/second through our reward function vs one subprocess per rollout.

    .venv/bin/python bench/rl_reward.py [--batch 64] [--rounds 3] [--no-write]

Ours: ``sca.rl.reward.SandboxReward`` on a generation batch, judged through the warm sandbox pool (one
worker per core, full confinement for this machine's tier). Baseline (the usual GRPO reward function):
one ``python -c`` subprocess per rollout, one lane per core, pass = exit code 0, which is also what a
forged pass would fool. Both judge the same batch (passing, failing, code-less and forging answers) in
the same process, interleaved per round; medians of the rounds. Figures go to the ``bench:rl_reward``
block of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from docs_block import write_block  # noqa: E402

from sca.config import SandboxConfig  # noqa: E402
from sca.rl.reward import SandboxReward, program, solution_of  # noqa: E402
from sca.sandbox import Sandbox  # noqa: E402

LANES = os.cpu_count() or 1
MARK = "<!-- bench:rl_reward -->", "<!-- /bench:rl_reward -->"
TESTS = "assert running_total([1, 2, 3]) == [1, 3, 6]\nassert running_total([]) == []\n"
ANSWERS = (
    "Keep a running sum.\n\n```python\ndef running_total(values):\n    total, out = 0, []\n    for v in values:\n"
    "        total += v\n        out.append(total)\n    return out\n```",
    "```python\ndef running_total(values):\n    return list(values)\n```",  # fails its tests
    "I would accumulate the values.",  # no code
    "```python\nimport os\nos._exit(0)\n```",  # forges a pass by exiting before the tests
)


def batch(n: int) -> list[str]:
    return [ANSWERS[i % len(ANSWERS)] for i in range(n)]


def rate_ours(reward: SandboxReward, answers: list[str]) -> tuple[float, list[float | None]]:
    start = time.perf_counter()
    got = reward([[]] * len(answers), answers, [TESTS] * len(answers))
    return len(answers) / (time.perf_counter() - start), got


def rate_subprocess(answers: list[str]) -> tuple[float, list[float]]:
    def one(answer: str) -> float:
        code, _ = solution_of(answer)
        if not code:
            return 0.0
        proc = subprocess.run([sys.executable, "-c", program(code, TESTS)], capture_output=True, timeout=10)
        return float(proc.returncode == 0)

    start = time.perf_counter()
    with ThreadPoolExecutor(LANES) as ex:
        got = list(ex.map(one, answers))
    return len(answers) / (time.perf_counter() - start), got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="rollouts per generation batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    answers = batch(args.batch)
    ours, base = [], []
    with Sandbox(SandboxConfig(workers=LANES)) as sandbox:
        reward = SandboxReward(sandbox, format_weight=0.1)
        rate_ours(reward, answers[: LANES * 2])  # warm-up: first forks, page cache
        for _ in range(args.rounds):
            r, ours_rewards = rate_ours(reward, answers)
            ours.append(r)
            r, base_rewards = rate_subprocess(answers)
            base.append(r)
        tier = sandbox.tier
    forged = [i for i, a in enumerate(answers) if "_exit" in a]
    ours_med, base_med = statistics.median(ours), statistics.median(base)
    rows = [
        ("ours: SandboxReward, warm pool, batched", f"{ours_med:.1f}", f"{ours_med / base_med:.2f}x",
         f"{sum(ours_rewards[i] or 0 for i in forged):.1f}"),
        ("baseline: one `python -c` per rollout", f"{base_med:.1f}", "1.00x", f"{sum(base_rewards[i] for i in forged):.1f}"),
    ]  # fmt: skip
    block = "\n".join(
        [
            MARK[0],
            "## rl_reward",
            "",
            f"`bench/rl_reward.py --batch {args.batch} --rounds {args.rounds}`: judged rollouts/second of one GRPO "
            f"generation batch ({args.batch} rollouts: passing, failing, code-less and forging answers in equal "
            f"shares), {LANES} lanes, sandbox tier {tier}, {platform.processor() or platform.machine()}, load average "
            f"{os.getloadavg()[0]:.1f} (a shared machine: the ratio, measured in one process, is the figure to keep), "
            "median of rounds interleaved in one process. The last column is the reward the forging rollouts "
            f"({len(forged)}) received in total: the baseline pays them as passes.",
            "",
            "| reward function | rollouts/s | vs baseline | reward paid to forgeries |",
            "|---|---|---|---|",
            *(f"| {' | '.join(r)} |" for r in rows),
            MARK[1],
        ]
    )
    print(block)
    if not args.no_write:
        print(f"wrote {write_block(block, MARK)}")


if __name__ == "__main__":
    main()
