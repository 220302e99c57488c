"""C->I: concepts + a sampled category and difficulty -> a task instruction (few-shot).

The category and difficulty are drawn per record with the weights ``categories`` / ``difficulties``
(name -> weight; the method's: function 0.5, class 0.25, program 0.25, difficulty uniform) and stored on
the Instruction. Params: :class:`InstructionsParams`; inputs: {"concepts"}.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from sca.config import StageConfig
from sca.generate.batches import Asking, Query, ask_all, pending, query_rng, summary
from sca.generate.fewshot import CATEGORIES, DIFFICULTIES, load_examples, sample
from sca.generate.prompting import each_sample, load_template, parse_instruction, unique_by_id
from sca.llm.contract import Completion, LLMParams
from sca.records import Concepts, Instruction, make_id
from sca.step import StepContext

STAGE = "instructions"


Weights = tuple[list[str], list[float]]


@dataclass(frozen=True)
class InstructionsParams:
    llm: LLMParams
    stage: StageConfig
    seed: int
    categories: dict[str, float]
    difficulties: dict[str, float]


def run(ctx: StepContext[InstructionsParams]) -> dict[str, float]:
    llm, stage, seed = ctx.params.llm, ctx.params.stage, ctx.params.seed
    categories = weights(ctx.params.categories, "categories", CATEGORIES)
    difficulties = weights(ctx.params.difficulties, "difficulties", DIFFICULTIES)

    # 1. The template and the few-shot examples it pins.
    template = load_template(stage.prompt)  # its content was checked against the step key
    pool = [example.fields() for example in load_examples(template.examples)]
    asking = Asking(STAGE, template, llm.chat, stage.sampling, seed, llm)

    with ctx.journal() as journal:
        # 2. One query per concepts record left to do: a category and a difficulty drawn with its own rng.
        queries = []
        for concepts in pending(ctx, journal, ctx.read("concepts", Concepts)):
            rng = query_rng(seed, concepts.id, STAGE)
            fields = {
                "category": draw(rng, categories),
                "difficulty": draw(rng, difficulties),
                "concepts": ", ".join(concepts.concepts),
            }
            queries.append(Query(concepts, fields, sample(pool, stage.num_fewshots, rng)))
        # 3. Ask a batch at a time; commit each batch's instructions as it comes back.
        ask_all(ctx, journal, queries, asking, instructions_of)
    # 4. The counters, as a table.
    return summary(ctx, STAGE, journal)


def weights(values: object, key: str, allowed: tuple[str, ...]) -> Weights:
    """(names, weights) of the entries with a positive weight, in the fixed order of ``allowed``."""
    if not isinstance(values, Mapping) or not values:
        raise ValueError(f"{key} must be a mapping name -> weight over {list(allowed)}, got {values!r}")
    bad = sorted(set(values) - set(allowed))
    if bad:
        raise ValueError(f"{key} has unknown entries {bad}; allowed: {list(allowed)}")
    if any(float(w) < 0 for w in values.values()) or sum(float(w) for w in values.values()) <= 0:
        raise ValueError(f"{key}={dict(values)}: weights must be >= 0 and sum to more than 0")
    names = [name for name in allowed if name in values and float(values[name]) > 0]
    return names, [float(values[name]) for name in names]


def draw(rng: random.Random, choices: Weights) -> str:
    return rng.choices(choices[0], weights=choices[1])[0]


def instructions_of(query: Query[Concepts], samples: list[Completion], counts: Counter[str]) -> list[Instruction]:
    """The distinct instructions of a query's samples; what cannot be used is counted in ``counts``."""
    concepts = query.record
    category, difficulty = query.fields["category"], query.fields["difficulty"]

    def parse(_: int, text: str) -> Instruction:
        instruction = parse_instruction(text)
        return Instruction(
            id=make_id(concepts.id, instruction, category, difficulty),
            parent_id=concepts.id,
            text=instruction,
            category=category,
            difficulty=difficulty,
        )

    parsed, _ = each_sample(samples, parse, counts)
    return unique_by_id(parsed, counts)
