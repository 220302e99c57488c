"""S->C: a seed function -> the programming concepts it exercises (few-shot, one sample per seed).

Params: :class:`ConceptsParams`; inputs: {"seeds"}.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sca.config import StageConfig
from sca.generate.batches import Asking, Query, ask_all, pending, query_rng, summary
from sca.generate.fewshot import load_examples, sample
from sca.generate.prompting import each_sample, first_line_complete, load_template, parse_concepts, unique_by_id
from sca.llm.contract import Completion, LLMParams
from sca.records import Concepts, Seed, make_id
from sca.step import StepContext

STAGE = "concepts"


@dataclass(frozen=True)
class ConceptsParams:
    llm: LLMParams
    stage: StageConfig
    seed: int


def run(ctx: StepContext[ConceptsParams]) -> dict[str, float]:
    llm, stage, seed = ctx.params.llm, ctx.params.stage, ctx.params.seed

    # 1. The template and the few-shot examples it pins.
    template = load_template(stage.prompt)  # its content was checked against the step key
    pool = [example.fields() for example in load_examples(template.examples)]
    asking = Asking(STAGE, template, llm.chat, stage.sampling, seed, llm)

    with ctx.journal() as journal:
        # 2. One query per seed left to do: its code, after few-shot examples drawn with its own rng.
        queries = [
            Query(s, {"seed": s.code.strip()}, sample(pool, stage.num_fewshots, query_rng(seed, s.id, STAGE)))
            for s in pending(ctx, journal, ctx.read("seeds", Seed))
        ]
        # 3. Ask a batch at a time; commit each batch's concepts as it comes back.
        ask_all(
            ctx, journal, queries, asking, lambda query, samples, counts: concepts_of(query.record, samples, counts)
        )
    # 4. The counters, as a table.
    return summary(ctx, STAGE, journal)


def concepts_of(seed: Seed, samples: list[Completion], counts: Counter[str]) -> list[Concepts]:
    """The distinct concept lists of a seed's samples; what cannot be used is counted in ``counts``."""

    def parse(_: int, text: str) -> Concepts:
        concepts = parse_concepts(text)
        return Concepts(id=make_id(seed.id, *concepts), parent_id=seed.id, concepts=concepts)

    parsed, _ = each_sample(samples, parse, counts, usable_if_cut=first_line_complete)
    return unique_by_id(parsed, counts)
