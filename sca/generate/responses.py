"""I->R: an instruction -> n sampled responses, each a solution (its python blocks) plus self-written tests.

``Response.text`` is what the SFT example shows (reasoning + solution, tests removed); ``solution`` and
``tests`` hold the code the sandbox runs. Params: :class:`ResponsesParams`; inputs: {"instructions"}.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections import Counter
from dataclasses import dataclass

from sca.config import ResponsesConfig
from sca.generate.batches import Asking, Query, ask_all, pending, query_rng, summary
from sca.generate.fewshot import load_examples, sample
from sca.generate.prompting import Template, each_sample, load_template, parse_response
from sca.llm.contract import Completion, LLMParams, Request
from sca.records import Instruction, Response, make_id
from sca.step import StepContext

STAGE = "responses"
# Where an answer hands over to its tests, as in the few-shot examples.
TESTS_CUE = "\n</response>\n\n<tests>\nThese checks cover the usual and the edge cases:\n\n```python\nassert "
FIRST_BLOCK_RE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n.*?\n[ \t]*```", re.DOTALL)
# A top-level function of the answer; the last one is the entry point (helpers come before their caller).
TOP_LEVEL_DEF_RE = re.compile(r"^def[ \t]+(\w+)[ \t]*\(", re.MULTILINE)
# With stop_at_code_end, generation also stops at a closing fence (the backend drops the stop string itself).
CODE_END = "\n```\n"


@dataclass(frozen=True)
class ResponsesParams:
    llm: LLMParams
    stage: ResponsesConfig
    seed: int


def ask_for_tests(
    request: Request,
    k: int,
    completion: Completion,
    stopped_at_code_end: bool = False,
    call_solution: bool = False,
) -> Request | None:
    """Continue an answer that ended after its solution without writing tests (``continue_for_tests``).

    Small models often stop after the code, or ramble on into more code blocks. Their answer up to the
    end of its first code block is kept, and the model is asked to go on from the tests cue of the
    few-shot format, in its own context, so the tests are still its own. A sample cut at max_tokens is
    never continued: it is dropped as truncated, whatever it holds. With ``stopped_at_code_end`` (the
    stage stops at a closing fence), an answer that stopped inside its code block is closed there first.
    With ``call_solution`` the cue goes on with a call of the answer's function (``tests_call_solution``).
    """
    if completion.finish_reason == "length" or "</response>" in completion.text:
        return None
    text = completion.text
    if stopped_at_code_end and completion.finish_reason == "stop" and text.count("```") % 2 == 1:
        text = text.rstrip("\n") + CODE_END.rstrip("\n")
    block = FIRST_BLOCK_RE.search(text)
    if block is None:
        return None
    return dataclasses.replace(
        request,
        prefix=request.prefix + text[: block.end()] + cue_for_tests(block.group(), call_solution),
        n=1,
        seed=(request.seed * 1_000_003 + k + 1) % 2**31,
        max_tokens=min(request.max_tokens, 256),  # tests are short; a rambling model is cut sooner
    )


def cue_for_tests(code_block: str, call_solution: bool) -> str:
    """The cue the tests go on from: the few-shot format's, then the answer's entry point if asked and found."""
    names = [name for name in TOP_LEVEL_DEF_RE.findall(code_block) if not name.startswith(("test", "_"))]
    return TESTS_CUE + f"{names[-1]}(" if call_solution and names else TESTS_CUE


def asking_for(stage: ResponsesConfig, template: Template, llm: LLMParams, seed: int) -> Asking:
    """How the stage asks: its sampling, with the code-end stop and the follow-up for tests its knobs turn on."""
    sampling, follow_up = stage.sampling, None
    if stage.stop_at_code_end:  # the answer ends with its code; its tests are asked for next (continue_for_tests)
        sampling = dataclasses.replace(sampling, stop=[*sampling.stop, CODE_END])
    if stage.continue_for_tests:
        follow_up = functools.partial(
            ask_for_tests, stopped_at_code_end=stage.stop_at_code_end, call_solution=stage.tests_call_solution
        )
    return Asking(STAGE, template, llm.chat, sampling, seed, llm, follow_up)


def run(ctx: StepContext[ResponsesParams]) -> dict[str, float]:
    llm, stage, seed = ctx.params.llm, ctx.params.stage, ctx.params.seed

    # 1. The template and the few-shot examples it pins.
    template = load_template(stage.prompt)  # its content was checked against the step key
    pool = [example.fields() for example in load_examples(template.examples)]
    asking = asking_for(stage, template, llm, seed)

    with ctx.journal() as journal:
        # 2. One query per instruction left to do, after few-shot examples drawn with its own rng.
        queries = [
            Query(i, {"instruction": i.text.strip()}, sample(pool, stage.num_fewshots, query_rng(seed, i.id, STAGE)))
            for i in pending(ctx, journal, ctx.read("instructions", Instruction))
        ]
        # 3. Ask a batch at a time (an answer without tests may be continued); commit each batch's responses.
        ask_all(
            ctx, journal, queries, asking, lambda query, samples, counts: responses_of(query.record, samples, counts)
        )
    # 4. The counters, as a table.
    return summary(ctx, STAGE, journal)


def responses_of(instruction: Instruction, samples: list[Completion], counts: Counter[str]) -> list[Response]:
    """Every usable sample of an instruction as a Response; what cannot be used is counted in ``counts``."""

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

    found, _ = each_sample(samples, parse, counts)
    return found


def close_open_fence(text: str) -> str:
    """A tests block the model ended (end of turn) without its closing fence: close it."""
    head, sep, tests = text.partition("<tests>")
    if sep and tests.count("```") % 2 == 1:
        return text.rstrip() + "\n```\n"
    return text
