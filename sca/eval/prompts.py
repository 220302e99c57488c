"""Benchmark problems -> LLM requests, following the paper's evaluation protocol (docs/evaluation.md).

Instruct models (``model.chat``): one user message holding a short instruction and the problem in a
```` ```python ```` block, and a response prefix that opens the answer's code block, so the model answers
with code at once and stops at the closing fence. HumanEval gives the function signature and docstring;
MBPP gives the task's sentence and its first assert. ``prefix_prompt`` also starts the answer with the
HumanEval signature (the protocol of the older StarCoder2-Instruct evaluation), so the model writes
only the body.

Base models get the benchmark's raw prompt and stop where a completion would start new top-level code.
"""

from __future__ import annotations

import re
from typing import Any

from sca.benchmarks import Problem
from sca.llm.contract import Request

FENCE_OPEN = "```python\n"
CHAT_STOP = ("\n```",)
# A function body ends where top-level code starts again.
HUMANEVAL_BASE_STOP = ("\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert ", "\nif __name__", "\nprint(", "\n# ")
# MBPP completions start with imports and the function itself, so only test/demo code may stop them.
MBPP_BASE_STOP = ("\nassert ", "\nif __name__", "\nprint(", '\n"""', "\n```")

HUMANEVAL_INSTRUCTION = "Implement the Python function below so that it behaves as its docstring describes.\n"
MBPP_TEST_LINE = "Your code must pass this test:"


def mbpp_parts(prompt: str) -> tuple[str, str]:
    """An MBPP+ prompt (a docstring: the task sentence, then asserts) -> (sentence, first assert)."""
    body = prompt.strip().strip('"').strip()
    lines = body.splitlines()
    asserts = [i for i, line in enumerate(lines) if line.lstrip().startswith("assert")]
    if not asserts:
        return " ".join(line.strip() for line in lines if line.strip()), ""
    first = asserts[0]
    sentence = " ".join(line.strip() for line in lines[:first] if line.strip())
    return sentence, lines[first].strip()


def instruction(dataset: str, problem: Problem) -> str:
    """The user message of an instruct model."""
    if dataset == "humaneval":
        return f"{HUMANEVAL_INSTRUCTION}```python\n{problem['prompt'].strip()}\n```"
    sentence, test = mbpp_parts(problem["prompt"])
    if not re.search(r"[.!?]$", sentence):
        sentence += "."
    if not test:
        return sentence
    return f"{sentence} {MBPP_TEST_LINE}\n```python\n{test}\n```"


def prefix(dataset: str, problem: Problem, prefix_prompt: bool = False) -> str:
    """The start of an instruct model's answer."""
    if prefix_prompt and dataset == "humaneval":
        return FENCE_OPEN + problem["prompt"]
    return FENCE_OPEN


def build_request(
    dataset: str, problem: Problem, chat: bool, seed: int, sampling: dict[str, Any], prefix_prompt: bool = False
) -> Request:
    """The request for one problem; ``sampling`` holds n, temperature, top_p and max_tokens."""
    if chat:
        return Request(
            prompt=[{"role": "user", "content": instruction(dataset, problem)}],
            prefix=prefix(dataset, problem, prefix_prompt),
            stop=CHAT_STOP,
            seed=seed,
            **sampling,
        )
    stop = HUMANEVAL_BASE_STOP if dataset == "humaneval" else MBPP_BASE_STOP
    return Request(prompt=problem["prompt"], stop=stop, seed=seed, **sampling)


def answer_text(request: Request, completion: str) -> str:
    """What extraction reads: the prefix the model was given plus what it wrote after it."""
    if isinstance(request.prompt, str):
        return request.prompt + completion
    return request.prefix + completion
