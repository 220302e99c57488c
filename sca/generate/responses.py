"""I->R: an instruction -> n sampled responses, each a solution (its python blocks) plus self-written tests.

``Response.text`` is what the SFT example shows (reasoning + solution, tests removed); ``solution`` and
``tests`` hold the code the sandbox runs. params: {"llm", "stage" (with ``continue_for_tests``),
"prompt_file", "seed"}; inputs: {"instructions"}.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from collections.abc import Mapping

from sca.generate.fewshot import load_examples, sample
from sca.generate.prompting import each_sample, parse_response, run_stage, stage_shots
from sca.llm.contract import Completion, Request
from sca.records import Instruction, Response, make_id
from sca.step import StepContext

STAGE = "responses"
# Where an answer hands over to its tests, as in the few-shot examples.
TESTS_CUE = "\n</response>\n\n<tests>\nThese checks cover the usual and the edge cases:\n\n```python\nassert "
FIRST_BLOCK_RE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n.*?\n[ \t]*```", re.DOTALL)


def ask_for_tests(request: Request, k: int, completion: Completion) -> Request | None:
    """Continue an answer that ended after its solution without writing tests (``continue_for_tests``).

    Small models often stop after the code, or ramble on into more code blocks. Their answer up to the
    end of its first code block is kept, and the model is asked to go on from the tests cue of the
    few-shot format, in its own context, so the tests are still its own. A sample cut at max_tokens is
    never continued: it is dropped as truncated, whatever it holds.
    """
    if completion.finish_reason == "length" or "</response>" in completion.text:
        return None
    block = FIRST_BLOCK_RE.search(completion.text)
    if block is None:
        return None
    return dataclasses.replace(
        request,
        prefix=request.prefix + completion.text[: block.end()] + TESTS_CUE,
        n=1,
        seed=(request.seed * 1_000_003 + k + 1) % 2**31,
        max_tokens=min(request.max_tokens, 256),  # tests are short; a rambling model is cut sooner
    )


def run(ctx: StepContext) -> dict[str, float]:
    shots_of, k = stage_shots(ctx.params, load_examples)
    follow_up = ask_for_tests if ctx.params["stage"]["continue_for_tests"] else None

    def prepare(instruction: Instruction, rng: random.Random) -> tuple[dict[str, str], list[dict[str, str]]]:
        return {"instruction": instruction.text.strip()}, sample(shots_of, k, rng)

    def collect(
        instruction: Instruction, fields: Mapping[str, str], completions: list[Completion]
    ) -> tuple[list[Response], Counter[str]]:
        def parse(i: int, text: str) -> Response:
            parsed = parse_response(close_open_fence(text))
            return Response(
                id=make_id(instruction.id, str(i), parsed.text),
                parent_id=instruction.id,
                sample=i,
                text=parsed.text,
                solution=parsed.solution,
                tests=parsed.tests,
            )

        return each_sample(completions, parse)

    return run_stage(ctx, STAGE, ctx.read("instructions", Instruction), prepare, collect, follow_up=follow_up)


def close_open_fence(text: str) -> str:
    """A tests block the model ended (end of turn) without its closing fence: close it."""
    head, sep, tests = text.partition("<tests>")
    if sep and tests.count("```") % 2 == 1:
        return text.rstrip() + "\n```\n"
    return text
