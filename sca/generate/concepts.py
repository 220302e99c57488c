"""S->C: a seed function -> the programming concepts it exercises (few-shot, one sample per seed).

params: {"llm", "stage" (hash view of the StageConfig), "prompt_file", "seed"}; inputs: {"seeds"}.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping

from sca.generate.fewshot import load_examples, sample
from sca.generate.prompting import (
    each_sample,
    first_line_complete,
    parse_concepts,
    run_stage,
    stage_shots,
    unique_by_id,
)
from sca.llm.contract import Completion
from sca.records import Concepts, Seed, make_id
from sca.step import StepContext

STAGE = "concepts"


def run(ctx: StepContext) -> dict[str, float]:
    shots_of, k = stage_shots(ctx.params, load_examples)

    def prepare(seed: Seed, rng: random.Random) -> tuple[dict[str, str], list[dict[str, str]]]:
        return {"seed": seed.code.strip()}, sample(shots_of, k, rng)

    def collect(
        seed: Seed, fields: Mapping[str, str], completions: list[Completion]
    ) -> tuple[list[Concepts], Counter[str]]:
        def parse(_: int, text: str) -> Concepts:
            concepts = parse_concepts(text)
            return Concepts(id=make_id(seed.id, *concepts), parent_id=seed.id, concepts=concepts)

        parsed, counts = each_sample(completions, parse, usable_if_cut=first_line_complete)
        return unique_by_id(parsed, counts), counts

    return run_stage(ctx, STAGE, ctx.read("seeds", Seed), prepare, collect)
