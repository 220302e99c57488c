"""C->I: concepts + a sampled category and difficulty -> a task instruction (few-shot).

The category and difficulty are drawn per record with the weights in params["categories"] /
params["difficulties"] (name -> weight; the method's: function 0.5, class 0.25, program 0.25, difficulty
uniform) and stored on the Instruction.
params: {"llm", "stage", "prompt_file", "seed", "categories", "difficulties"}; inputs: {"concepts"}.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping

from sca.generate.fewshot import CATEGORIES, DIFFICULTIES, load_examples, sample
from sca.generate.prompting import each_sample, parse_instruction, run_stage, stage_shots, unique_by_id
from sca.llm.contract import Completion
from sca.records import Concepts, Instruction, make_id
from sca.step import StepContext

STAGE = "instructions"


Weights = tuple[list[str], list[float]]


def weights(params: Mapping[str, object], key: str, allowed: tuple[str, ...]) -> Weights:
    """(names, weights) of the entries with a positive weight, in the fixed order of ``allowed``."""
    values = params[key]
    if not isinstance(values, Mapping) or not values:
        raise ValueError(f"params[{key!r}] must be a mapping name -> weight over {list(allowed)}, got {values!r}")
    bad = sorted(set(values) - set(allowed))
    if bad:
        raise ValueError(f"params[{key!r}] has unknown entries {bad}; allowed: {list(allowed)}")
    if any(float(w) < 0 for w in values.values()) or sum(float(w) for w in values.values()) <= 0:
        raise ValueError(f"params[{key!r}]={dict(values)}: weights must be >= 0 and sum to more than 0")
    names = [name for name in allowed if name in values and float(values[name]) > 0]
    return names, [float(values[name]) for name in names]


def draw(rng: random.Random, choices: Weights) -> str:
    return rng.choices(choices[0], weights=choices[1])[0]


def run(ctx: StepContext) -> dict[str, float]:
    categories = weights(ctx.params, "categories", CATEGORIES)
    difficulties = weights(ctx.params, "difficulties", DIFFICULTIES)
    shots_of, k = stage_shots(ctx.params, load_examples)

    def prepare(concepts: Concepts, rng: random.Random) -> tuple[dict[str, str], list[dict[str, str]]]:
        fields = {
            "category": draw(rng, categories),
            "difficulty": draw(rng, difficulties),
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
