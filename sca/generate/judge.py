"""Seed quality judge (METHOD 1.3): is the docstring alone enough to re-implement the function?

The model sees the code without its docstring and the docstring apart, after few-shot Yes/No examples,
and answers (greedy, a few tokens: set stage.sampling accordingly). A seed is kept when its answers
hold more "yes" than "no"; ties and anything else count as no. A cut answer is still read: only its
first words matter. params: {"llm", "stage", "prompt_file", "seed"}; inputs: {"seeds"}.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping

from sca.generate.backend import Completion
from sca.generate.fewshot import load_judge_examples, sample, split_docstring
from sca.generate.prompting import ParseError, parse_verdict, run_stage, stage_shots
from sca.records import Seed
from sca.step import StepContext

STAGE = "judge"


def run(ctx: StepContext) -> dict[str, float]:
    shots_of, k = stage_shots(ctx.params, load_judge_examples)

    def prepare(seed: Seed, rng: random.Random) -> tuple[dict[str, str], list[dict[str, str]]]:
        split = split_docstring(seed.code)
        if split is None:
            raise ParseError("no_docstring")
        code, docstring = split
        return {"code": code, "docstring": docstring}, sample(shots_of, k, rng)

    def collect(
        seed: Seed, fields: Mapping[str, str], completions: list[Completion]
    ) -> tuple[list[Seed], Counter[str]]:
        verdict = parse_verdict([c.text for c in completions])
        if verdict is None:
            return [], Counter({"dropped_judge_unclear": 1})
        if not verdict:
            return [], Counter({"dropped_judged_no": 1})
        return [seed], Counter({"judged_yes": 1})

    return run_stage(ctx, STAGE, ctx.read("seeds", Seed), prepare, collect)
