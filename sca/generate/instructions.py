"""C->I: concepts + a sampled category and difficulty -> a task instruction (few-shot).

The category and difficulty are drawn per record from params["categories"] / params["difficulties"]
(uniform over the list: repeat an entry to weight it, e.g. the reference's function, function, class,
program) and stored on the Instruction.
params: {"llm", "stage", "prompt_file", "seed", "categories", "difficulties"}; inputs: {"concepts"}.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping

from sca.generate.backend import Completion
from sca.generate.fewshot import CATEGORIES, DIFFICULTIES, load_examples, sample
from sca.generate.prompting import each_sample, parse_instruction, run_stage, stage_shots, unique_by_id
from sca.records import Concepts, Instruction, make_id
from sca.step import StepContext

STAGE = "instructions"


def _choices(params: Mapping[str, object], key: str, allowed: tuple[str, ...]) -> list[str]:
    values = params.get(key)
    if not isinstance(values, list) or not values:
        raise ValueError(f"params[{key!r}] must be a non-empty list of {list(allowed)}, got {values!r}")
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ValueError(f"params[{key!r}] has unknown values {bad}; allowed: {list(allowed)}")
    return [str(v) for v in values]


def run(ctx: StepContext) -> dict[str, float]:
    categories = _choices(ctx.params, "categories", CATEGORIES)
    difficulties = _choices(ctx.params, "difficulties", DIFFICULTIES)
    shots_of, k = stage_shots(ctx.params, load_examples)

    def prepare(concepts: Concepts, rng: random.Random) -> tuple[dict[str, str], list[dict[str, str]]]:
        fields = {
            "category": rng.choice(categories),
            "difficulty": rng.choice(difficulties),
            "concepts": ", ".join(concepts.concepts),
        }
        return fields, sample(shots_of, k, rng)

    def collect(
        concepts: Concepts, fields: Mapping[str, str], completions: list[Completion]
    ) -> tuple[list[Instruction], Counter[str]]:
        category, difficulty = fields["category"], fields["difficulty"]

        def parse(_: int, text: str) -> Instruction:
            instruction = parse_instruction(text)
            return Instruction(
                id=make_id(concepts.id, instruction, category, difficulty),
                parent_id=concepts.id,
                text=instruction,
                category=category,
                difficulty=difficulty,
            )

        parsed, counts = each_sample(completions, parse)
        return unique_by_id(parsed, counts), counts

    return run_stage(ctx, STAGE, ctx.read("concepts", Concepts), prepare, collect)
