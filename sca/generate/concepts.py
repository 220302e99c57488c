"""S->C: a seed function -> the programming concepts it exercises (few-shot, one sample per seed).

params: {"llm", "stage" (hash view of the StageConfig), "prompt_file", "seed"}; inputs: {"seeds"}.
"""

from __future__ import annotations

from collections import Counter
from contextlib import closing

from sca.generate.batches import Asking, Query, answered_batches, commit, pending, query_rng, summary
from sca.generate.fewshot import load_examples, sample
from sca.generate.prompting import each_sample, first_line_complete, parse_concepts, stage_template, unique_by_id
from sca.llm.contract import Completion, is_chat
from sca.records import Concepts, Seed, make_id
from sca.step import StepContext

STAGE = "concepts"


def run(ctx: StepContext) -> dict[str, float]:
    # The step's parameters: every read of ctx.params and ctx.runtime.
    llm, stage, seed, runtime = ctx.params["llm"], ctx.params["stage"], int(ctx.params["seed"]), ctx.runtime
    prompt_file, pinned = str(ctx.params["prompt_file"]), str(stage["prompt"])
    num_fewshots, sampling, chat = int(stage["num_fewshots"]), stage["sampling"], is_chat(llm.get("model", {}))
    batch_size = max(1, int(runtime.get("backend", {}).get("batch_size", 64)))

    # 1. The template (checked against the step key) and the few-shot examples it pins.
    template = stage_template(prompt_file, pinned)
    pool = [example.fields() for example in load_examples(template.examples)]
    asking = Asking(STAGE, template, chat, sampling, seed, batch_size, llm, runtime)

    with ctx.journal() as journal:
        # 2. One query per seed left to do: its code, after few-shot examples drawn with its own rng.
        queries = [
            Query(s, {"seed": s.code.strip()}, sample(pool, num_fewshots, query_rng(seed, s.id, STAGE)))
            for s in pending(ctx, journal, ctx.read("seeds", Seed))
        ]
        # 3. Ask a batch at a time; commit each batch's concepts as it comes back.
        with closing(answered_batches(ctx, journal, queries, asking)) as batches:
            for batch in batches:
                found = []
                for query, samples in batch.answers:
                    found += concepts_of(query.record, samples, batch.counts)
                commit(journal, batch, found)
    # 4. The counters, as a table.
    return summary(ctx, STAGE, journal)


def concepts_of(seed: Seed, samples: list[Completion], counts: Counter[str]) -> list[Concepts]:
    """The distinct concept lists of a seed's samples; what cannot be used is counted in ``counts``."""

    def parse(_: int, text: str) -> Concepts:
        concepts = parse_concepts(text)
        return Concepts(id=make_id(seed.id, *concepts), parent_id=seed.id, concepts=concepts)

    parsed, _ = each_sample(samples, parse, counts, usable_if_cut=first_line_complete)
    return unique_by_id(parsed, counts)
