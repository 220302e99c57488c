"""I->R: an instruction -> n sampled responses, each a solution code block plus self-written tests.

``Response.text`` is what the SFT example shows (reasoning + solution, tests removed); ``solution`` and
``tests`` hold the code the sandbox runs. params: {"llm", "stage", "prompt_file", "seed"};
inputs: {"instructions"}.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping

from sca.generate.backend import Completion
from sca.generate.fewshot import load_examples, sample
from sca.generate.prompting import each_sample, parse_response, run_stage, stage_template
from sca.records import Instruction, Response, make_id
from sca.step import StepContext

STAGE = "responses"


def run(ctx: StepContext) -> dict[str, float]:
    examples = load_examples(stage_template(ctx.params).examples)
    k = int(ctx.params["stage"]["num_fewshots"])
    shots_of = [e.fields() for e in examples]

    def prepare(instruction: Instruction, rng: random.Random) -> tuple[dict[str, str], list[dict[str, str]]]:
        return {"instruction": instruction.text.strip()}, sample(shots_of, k, rng)

    def collect(
        instruction: Instruction, fields: Mapping[str, str], completions: list[Completion]
    ) -> tuple[list[Response], Counter[str]]:
        def parse(i: int, text: str) -> Response:
            parsed = parse_response(text)
            return Response(
                id=make_id(instruction.id, str(i), parsed.text),
                parent_id=instruction.id,
                sample=i,
                text=parsed.text,
                solution=parsed.solution,
                tests=parsed.tests,
            )

        return each_sample(completions, parse)

    return run_stage(ctx, STAGE, ctx.read("instructions", Instruction), prepare, collect)
