"""Seed quality judge (docs/method.md: the seed judge): is the docstring alone enough to re-implement the function?

The model sees the code without its docstring and the docstring apart, after few-shot Yes/No examples,
and answers (greedy, a few tokens: set stage.sampling accordingly). A seed is kept when its answers
hold more "yes" than "no"; ties and anything else count as no. A cut answer is still read: only its
first words matter.

``seeds.limit`` is the final seed count, the judge included (the paper's seed count is what survived every
filter): the seeds step does not sample when the judge is on, and this step's last act keeps a seeded
sample of ``limit`` approved seeds. Verdicts are journaled in ``<out>/verdicts/`` (resumable per batch);
the sample is committed once. params: {"llm", "stage", "prompt_file", "seed", "limit"}; inputs: {"seeds"}.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Mapping

from sca.generate.fewshot import load_judge_examples, sample, split_docstring
from sca.generate.prompting import ParseError, parse_verdict, run_stage, stage_shots
from sca.io import iter_records, shard_name
from sca.llm.contract import Completion
from sca.progress import print_counters
from sca.records import Seed
from sca.step import StepContext

STAGE = "judge"
FINAL = "_final"  # sentinel id: the sample was committed


def judge(ctx: StepContext) -> dict[str, float]:
    """Judge every input seed; the approved ones are the records of ``ctx.out``."""
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


def run(ctx: StepContext) -> dict[str, float]:
    if ctx.num_shards != 1:
        raise ValueError("judged_seeds samples seeds.limit of every approved seed and runs as one shard")
    limit, seed = int(ctx.params["limit"]), int(ctx.params["seed"])
    with ctx.journal() as journal:
        if FINAL in journal.done:
            return dict(journal.counters)
    verdicts = ctx.out / "verdicts"
    verdicts.mkdir(exist_ok=True)
    counts: Counter[str] = Counter(judge(dataclasses.replace(ctx, out=verdicts)))
    approved = {s.id: s for s in iter_records(verdicts / shard_name("records", 0), Seed)}
    ids = sorted(approved)
    counts["judge_in"], counts["judge_out"] = int(counts["in"]), len(ids)
    if limit and len(ids) > limit:
        counts["dropped_limit"] = len(ids) - limit
        ids = sorted(random.Random(f"{seed}:judged_seeds").sample(ids, limit))
    counts["kept"] = len(ids)
    with ctx.journal() as journal:
        journal.commit([*ids, FINAL], [approved[i] for i in ids], counts)
        print_counters("judged seeds: before and after the judge", journal.counters)
        return dict(journal.counters)
