"""Seed quality judge (docs/method.md: the seed judge): is the docstring alone enough to re-implement the function?

The model sees the code without its docstring and the docstring apart, after few-shot Yes/No examples,
and answers (greedy, a few tokens: set stage.sampling accordingly). A seed is kept when its answers
hold more "yes" than "no"; ties and anything else count as no. A cut answer is still read: only its
first words matter.

``seeds.limit`` is the final seed count, the judge included (the paper's seed count is what survived every
filter): the seeds step does not sample when the judge is on, and this step's last act keeps a seeded
sample of ``limit`` approved seeds. Verdicts are journaled in ``<out>/verdicts/`` (resumable per batch);
the sample is committed once. Params: :class:`JudgeParams`; inputs: {"seeds"}.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from dataclasses import dataclass

from sca.config import JudgeConfig
from sca.generate.batches import Asking, Query, ask_all, pending, query_rng, summary
from sca.generate.fewshot import load_judge_examples, sample, split_docstring
from sca.generate.prompting import load_template, parse_verdict
from sca.io import iter_records, shard_name
from sca.llm.contract import Completion, LLMParams
from sca.progress import print_counters
from sca.records import Seed
from sca.step import StepContext

STAGE = "judge"
FINAL = "_final"  # sentinel id: the sample was committed


@dataclass(frozen=True)
class JudgeParams:
    llm: LLMParams
    stage: JudgeConfig
    seed: int
    limit: int
    """seeds.limit: how many approved seeds to keep (0 = all)."""


def run(ctx: StepContext[JudgeParams]) -> dict[str, float]:
    llm, stage, seed = ctx.params.llm, ctx.params.stage, ctx.params.seed
    limit = ctx.params.limit

    if ctx.num_shards != 1:
        raise ValueError("judged_seeds samples seeds.limit of every approved seed and runs as one shard")
    # 1. A run that committed its sample is done.
    with ctx.journal() as journal:
        if FINAL in journal.done:
            return dict(journal.counters)
    # 2. The template and the Yes/No examples it pins.
    template = load_template(stage.prompt)  # its content was checked against the step key
    pool = [example.fields() for example in load_judge_examples(template.examples)]
    asking = Asking(STAGE, template, llm.chat, stage.sampling, seed, llm)
    # 3. Judge every seed; the verdicts are journaled in verdicts/, so a re-run judges only the rest.
    verdicts = ctx.out / "verdicts"
    verdicts.mkdir(exist_ok=True)
    seeds = ctx.read("seeds", Seed)
    counts: Counter[str] = Counter(
        judge(dataclasses.replace(ctx, out=verdicts), seeds, pool, stage.num_fewshots, asking)
    )
    # 4. A seeded sample of ``limit`` approved seeds, committed once.
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


def judge(
    ctx: StepContext, seeds: list[Seed], pool: list[dict[str, str]], num_fewshots: int, asking: Asking
) -> dict[str, float]:
    """Judge every seed of ``seeds``; the approved ones are the records of ``ctx.out``."""
    with ctx.journal() as journal:
        queries = [query(s, pool, num_fewshots, asking.seed) for s in pending(ctx, journal, seeds)]
        ask_all(
            ctx, journal, queries, asking, lambda q, samples, counts: [q.record] if approves(samples, counts) else []
        )
    return summary(ctx, STAGE, journal)


def query(seed: Seed, pool: list[dict[str, str]], num_fewshots: int, run_seed: int) -> Query[Seed]:
    """The seed's code without its docstring and the docstring apart; a seed without one is not asked."""
    split = split_docstring(seed.code)
    if split is None:
        return Query(seed, {}, [], dropped="no_docstring")
    code, docstring = split
    return Query(
        seed, {"code": code, "docstring": docstring}, sample(pool, num_fewshots, query_rng(run_seed, seed.id, STAGE))
    )


def approves(samples: list[Completion], counts: Counter[str]) -> bool:
    """Whether the answers hold more yes than no; a no or a tie is counted in ``counts``."""
    verdict = parse_verdict([c.text for c in samples])
    if verdict is None:
        counts["dropped_judge_unclear"] += 1
    elif not verdict:
        counts["dropped_judged_no"] += 1
    else:
        counts["judged_yes"] += 1
    return bool(verdict)
