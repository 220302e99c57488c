"""Sandbox throughput: trivial programs/second, ours (full confinement) vs evalplus vs `python -c`.

    .venv/bin/python bench/sandbox.py [--n 400] [--rounds 3] [--no-write]

All three run in the same process, interleaved per round (the machine is shared: medians of rounds),
each with one lane per core. Then the per-layer cost: single-lane p50 latency of one program with
the layers added one by one. Figures go to the ``bench:sandbox`` block of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from docs_block import write_block  # noqa: E402

from sca.config import SandboxConfig  # noqa: E402
from sca.records import Response, make_id  # noqa: E402
from sca.sandbox import Sandbox, probe  # noqa: E402
from sca.sandbox.step import check_strength  # noqa: E402

CODE = "def add(a, b):\n    return a + b\n"
PROGRAM = CODE + "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
LANES = os.cpu_count() or 1
LOAD = os.getloadavg()[0]
MBPP = (
    Path(os.environ.get("SCA_SHARED_DATA", ROOT.parent / "shared" / "data")) / "benchmarks" / "mbpp-sanitized-427.json"
)
MARK = "<!-- bench:sandbox -->", "<!-- /bench:sandbox -->"


def _evalplus_one(_: int) -> str:
    from evalplus.eval import untrusted_check

    stat, _details = untrusted_check("humaneval", CODE, [[2, 3], [-1, 1]], "add", [5, 0], 0, [0.001, 0.001])
    return str(stat)


def rate_evalplus(n: int, pool: ProcessPoolExecutor) -> float:
    """evalplus's own path: a process pool whose workers fork one multiprocessing.Process per program."""
    start = time.perf_counter()
    stats = list(pool.map(_evalplus_one, range(n)))
    assert all(s == "pass" for s in stats), stats[:3]
    return n / (time.perf_counter() - start)


def rate_python_c(n: int) -> float:
    def one(_: int) -> int:
        return subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True).returncode

    start = time.perf_counter()
    with ThreadPoolExecutor(LANES) as ex:
        assert not any(ex.map(one, range(n)))
    return n / (time.perf_counter() - start)


def rate_ours(n: int, sb: Sandbox) -> float:
    start = time.perf_counter()
    outs = sb.run_filter([PROGRAM] * n)
    assert all(o.verdict == "passed" for o in outs), outs[:3]
    return n / (time.perf_counter() - start)


def stub_cost(sb: Sandbox, n: int, rounds: int) -> tuple[float, float]:
    """Seconds per passing sample: the filter run itself, and the stub check added on top (median of rounds)."""
    responses = [
        Response(id=make_id(str(i)), parent_id="b", sample=0, text="", solution=CODE, tests=PROGRAM[len(CODE) :])
        for i in range(n)
    ]
    runs, stubs = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        assert all(o.verdict == "passed" for o in sb.run_filter([PROGRAM] * n))
        runs.append((time.perf_counter() - start) / n)
        start = time.perf_counter()
        assert all(check_strength(sb, responses).values())  # the tests are strong: every stub run fails
        stubs.append((time.perf_counter() - start) / n)
    return statistics.median(runs), statistics.median(stubs)


def weak_share_mbpp(sb: Sandbox) -> tuple[int, int, int, float]:
    """Real solutions with human-written tests (MBPP sanitized): tasks, passing, weak, stub seconds per pass."""
    tasks = json.loads(MBPP.read_text())
    responses = [
        Response(
            id=make_id(str(t["task_id"])),
            parent_id="mbpp",
            sample=0,
            text="",
            solution=t["code"],
            tests="\n".join([*t["test_imports"], *t["test_list"]]),
        )
        for t in tasks
    ]
    outs = sb.run_filter([r.solution + "\n\n" + r.tests + "\n" for r in responses])
    passed = [r for r, o in zip(responses, outs, strict=True) if o.verdict == "passed"]
    start = time.perf_counter()
    strong = check_strength(sb, passed)
    per_pass = (time.perf_counter() - start) / max(1, len(passed))
    return len(tasks), len(passed), sum(v is False for v in strong.values()), per_pass


def latency_ms(sb: Sandbox, k: int) -> tuple[float, float]:
    """p50 wall ms end to end, and p50 CPU ms of the child itself (robust to a loaded machine)."""
    walls, cpus = [], []
    for _ in range(k):
        start = time.perf_counter()
        obs = sb._observe(sb._job({"mode": "filter", "code": PROGRAM, "timeout": 10.0}))
        walls.append(time.perf_counter() - start)
        cpus.append(obs["cpu"])
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000


def layers(k: int) -> list[tuple[str, float, float]]:
    """Single-lane p50 per program as layers are added (the first rows in tier B: no namespaces)."""
    rows = []
    steps: list[tuple[str, str, tuple[str, ...]]] = [
        ("fork only (warm worker, own session, pipes, work dir)", "C", ()),
        ("+ rlimits (AS, CPU, FSIZE, NOFILE, CORE)", "C", ("rlimits",)),
        ("+ Landlock (FS allow-list, TCP deny, signal scope)", "B", ("rlimits", "landlock")),
        ("+ seccomp (precompiled BPF, pid patched)", "B", ("rlimits", "landlock", "seccomp")),
    ]
    if probe().tier == "A":
        steps.append(("+ pool in user/pid/net/mount namespaces (tier A)", "A", ("rlimits", "landlock", "seccomp")))
    for label, tier, lay in steps:
        os.environ["SCA_SANDBOX_FORCE_TIER"] = tier
        probe.cache_clear()
        with Sandbox(SandboxConfig(workers=1, min_tier="C"), layers=lay) as sb:
            latency_ms(sb, 20)  # warm-up
            rows.append((label, *latency_ms(sb, k)))
    os.environ.pop("SCA_SANDBOX_FORCE_TIER", None)
    probe.cache_clear()
    return rows


def render(
    results: dict[str, list[float]],
    layer_rows: list[tuple[str, float, float]],
    n: int,
    startup: float,
    stub: tuple[float, float],
    mbpp: tuple[int, int, int, float] | None,
) -> str:
    med = {k: statistics.median(v) for k, v in results.items()}
    ours = med["ours"]
    lines = [
        MARK[0],
        f"### Sandbox throughput (`bench/sandbox.py`, {time.strftime('%Y-%m-%d')})",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, kernel {platform.release()}, Python {platform.python_version()}; "
        f"{LANES} lanes each; trivial `add` program with two asserts, filter mode with all its checks (audit hook, "
        f"check counting, test collection); median of {len(results['ours'])} interleaved rounds "
        f"({n} programs per round, fewer for `python -c`). Ours runs at {probe().describe()}. Load average "
        f"{LOAD:.1f} at the start. Shared machine: absolute "
        "rates are noisy, ratios within a round are the figure to quote.",
        "",
        "| method | programs/s (median) | rounds | ours / method |",
        "|---|---|---|---|",
    ]
    names = {
        "ours": "sca sandbox, full confinement (warm workers, fork per program)",
        "evalplus": "evalplus 0.3.1 `untrusted_check` in a process pool (its own path, no confinement)",
        "python_c": "fresh `python -c` per program (no confinement)",
    }
    for key in ("ours", "evalplus", "python_c"):
        rounds = ", ".join(f"{r:.0f}" for r in results[key])
        lines.append(f"| {names[key]} | **{med[key]:.0f}** | {rounds} | {ours / med[key]:.2f}x |")
    lines += [
        "",
        f"Pool start-up (one-off, {LANES} workers incl. tier probe): {startup:.2f} s.",
        "",
        f"Stub check (`sandbox.stub_check`, {LANES} lanes, {n} passing samples, median of rounds): the filter run costs "
        f"{stub[0] * 1000:.2f} ms of wall time per sample, the stub check adds **{stub[1] * 1000:.2f} ms per passing "
        f"sample** ({stub[1] / stub[0]:.2f}x a filter run: one more sandbox run plus the stub's AST rewrite). Failing "
        "samples are not re-run.",
        "",
    ]
    if mbpp is not None:
        n_tasks, n_pass, n_weak, per_pass = mbpp
        lines += [
            f"On real code, MBPP sanitized ({n_tasks} reference solutions with their human-written asserts): {n_pass} pass "
            f"in the sandbox, and {n_weak} of them ({100 * n_weak / max(1, n_pass):.1f}%) have tests a stub also passes; "
            f"the stub check cost {per_pass * 1000:.2f} ms per passing sample there. Model-written tests are the "
            "ones to watch: the executions step prints their share (`stub_weak_tests / stub_checked`).",
            "",
        ]
    lines += [
        "Per-layer cost, one lane: p50 wall latency of one program end to end (supervisor -> worker -> child ->",
        "verdict) and p50 CPU time of the forked child itself (`wait4` rusage; the robust figure on a shared machine):",
        "",
        "| configuration | p50 wall ms | p50 child CPU ms | added CPU |",
        "|---|---|---|---|",
    ]
    prev = None
    for label, wall, cpu in layer_rows:
        added = "" if prev is None else f"{cpu - prev:+.2f} ms"
        lines.append(f"| {label} | {wall:.2f} | {cpu:.2f} | {added} |")
        prev = cpu
    lines.append(MARK[1])
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="programs per round (python -c gets n/4)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--layer-samples", type=int, default=150)
    ap.add_argument("--no-write", action="store_true", help="print only, do not touch docs/benchmarks.md")
    args = ap.parse_args()
    results: dict[str, list[float]] = {"ours": [], "evalplus": [], "python_c": []}
    start = time.perf_counter()
    sb = Sandbox(SandboxConfig(min_tier="C"))
    startup = time.perf_counter() - start
    runners: dict[str, Callable[[], float]]
    with sb, ProcessPoolExecutor(LANES) as pool:
        list(pool.map(_evalplus_one, range(LANES * 2)))  # import evalplus in the pool workers first
        runners = {
            "ours": lambda: rate_ours(args.n, sb),
            "evalplus": lambda: rate_evalplus(args.n, pool),
            "python_c": lambda: rate_python_c(max(LANES, args.n // 4)),
        }
        for r in range(args.rounds):
            for key, fn in runners.items():
                results[key].append(fn())
                print(f"round {r + 1}: {key:9s} {results[key][-1]:7.1f} programs/s", file=sys.stderr)
        stub = stub_cost(sb, args.n, args.rounds)
        mbpp = weak_share_mbpp(sb) if MBPP.exists() else None
    layer_rows = layers(args.layer_samples)
    block = render(results, layer_rows, args.n, startup, stub, mbpp)
    print(block)
    if not args.no_write:
        print(f"written to {write_block(block, MARK)}", file=sys.stderr)


if __name__ == "__main__":
    main()
