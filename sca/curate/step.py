"""Step ``sft_data``: from executed responses to a clean SFT dataset (docs/method.md: curation; the reference's defects fixed).

``run`` joins each response with its execution and lineage, then applies the phases of :mod:`.phases`
in order, every removed response counted under ``dropped_<reason>`` and written to ``removed.jsonl``:

1. ``passing``: passing only (``verdict == "passed"``); with ``require_strong_tests``, ``strong_tests``
   keeps only those whose tests failed against a stub solution (``Execution.strong_tests``, beyond the paper);
2. ``well_formed``: the solution parses; the tests parse, assert something and really invoke code at top
   level (not only defs/imports); the response shows a fenced code block and does not contain the tests;
   no placeholder text (``TODO``, ``your code here``, ``NotImplemented``...) as whole words (:mod:`.format`);
3. ``short_instructions``: instructions longer than ``max_instruction_chars`` or ``max_instruction_words``
   (whitespace-separated words; the method's cap is 200) dropped;
4. ``one_per_instruction``: one random passing response per instruction (``random.Random(f"{seed}:{instruction_id}")``);
5. ``exact_dedup`` of instructions and of responses (whitespace removed);
6. ``near_dedup``: MinHash over the instruction, the response and the solution's code skeleton (:mod:`.dedup`);
7. ``add_asserts``: optional assert augmentation (the paper's C.1: up to 5 asserts for half the examples;
   off by default); it drops nothing;
8. ``decontaminate`` (exact + n-gram) the final text: instruction + response (:mod:`.decontam`).

The walk order of 5-6 ("first occurrence wins") is a seeded shuffle: records sorted by
``make_id(seed, response_id)``, so the result does not depend on input order or sharding.
The reference's function-name diversity rule (drop different tasks whose solutions define the same
names) is left out: it removes distinct tasks, not duplicates.

The step is global (dedup), fast, and writes its output in one commit at the end; a crash before that
simply recomputes.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from sca.benchmarks import BenchmarkFiles
from sca.config import CurateConfig
from sca.curate.decontam import load_decontaminator
from sca.curate.format import augment, format_problem
from sca.curate.phases import (
    NEAR_FIELDS,
    Candidate,
    Drop,
    Phase,
    decontaminate,
    exact_dedup,
    near_dedup,
    one_per_instruction,
    passing,
    short_instructions,
    strong_tests,
    well_formed,
)
from sca.io import atomic_write_text
from sca.progress import console, print_counters, table
from sca.records import Concepts, Execution, Instruction, Response, Seed, SFTExample, make_id
from sca.step import StepContext

# format_problem and augment are the step's rules, named here too for callers of the step module.
__all__ = ["FUNNEL", "REMOVED", "Inputs", "augment", "format_problem", "join", "read_inputs", "run"]

REMOVED = "removed.jsonl"
FUNNEL = ("seeds", "concepts", "instructions", "responses", "passed", "selected", "dedup", "decontam")


@dataclasses.dataclass(frozen=True)
class CurateParams:
    curate: CurateConfig
    benchmarks: BenchmarkFiles
    """The benchmarks of ``curate.decontaminate``: what the final examples must not leak."""
    seed: int


def run(ctx: StepContext[CurateParams]) -> dict[str, float]:
    if ctx.num_shards != 1:
        raise ValueError("the curation step is global (dedup) and runs as one shard; set num_shards=1 for it")
    cfg, seed = ctx.params.curate, ctx.params.seed
    journal = ctx.journal()
    if journal.done:
        journal.close()
        return dict(journal.counters)

    # 1. Read the inputs and join each response with its execution, instruction, concepts and seed.
    inputs = read_inputs(ctx)
    candidates = join(inputs)
    files = ctx.params.benchmarks
    decon = load_decontaminator(files, cfg.decontam_ngram) if files.hashes else None

    # 2. Apply the phases in order; each drop says why.
    drops: list[Drop] = []
    passed = apply(candidates, drops, passing)
    selected = apply(
        passed,
        drops,
        partial(strong_tests, required=cfg.require_strong_tests),
        well_formed,
        partial(short_instructions, max_chars=cfg.max_instruction_chars, max_words=cfg.max_instruction_words),
        partial(one_per_instruction, seed=seed),
        partial(exact_dedup, seed=seed),
    )
    near = [
        partial(
            near_dedup,
            field=f,
            threshold=cfg.dedup_threshold,
            num_perm=cfg.dedup_num_perm,
            ngram=cfg.dedup_ngram,
            seed=seed,
        )  # fmt: skip
        for f in NEAR_FIELDS
    ]
    deduped = apply(selected, drops, *near)
    prompted = add_asserts(deduped, seed=seed, p=cfg.augment_asserts_p, max_asserts=cfg.augment_max_asserts)
    final = apply(prompted, drops, partial(decontaminate, decon=decon))

    # 3. Write the examples, what was removed and why, and the counters.
    counts = Counter(f"dropped_{d.reason}" for d in drops)
    if prompted:
        counts["augmented"] = sum(c.prompt != c.instruction.text for c in prompted)
    funnel = {
        "seeds": len(inputs.seeds),
        "concepts": len(inputs.concepts),
        "instructions": len(inputs.instructions),
        "responses": len(inputs.responses),
        "passed": len(passed),
        "selected": len(selected),
        "dedup": len(deduped),
        "decontam": len(final),
    }
    counts.update({f"funnel_{k}": funnel[k] for k in FUNNEL})
    removed = sorted((removed_entry(d) for d in drops), key=lambda e: (e["reason"], e["response_id"]))
    atomic_write_text(
        ctx.out / REMOVED, "".join(json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n" for e in removed)
    )
    examples = sorted((to_example(c) for c in final), key=lambda x: x.id)
    journal.commit([r.id for r in inputs.responses] + ["_final"], examples, counts)
    journal.close()
    print_funnel(funnel)
    print_counters("curation", journal.counters)
    return dict(journal.counters)


@dataclasses.dataclass(frozen=True)
class Inputs:
    seeds: dict[str, Seed]
    concepts: dict[str, Concepts]
    instructions: dict[str, Instruction]
    responses: list[Response]
    executions: dict[str, Execution]  # by response id


def read_inputs(ctx: StepContext) -> Inputs:
    """The step's inputs, indexed by id; an id twice means a corrupt input and fails."""
    seeds = _index(ctx.read("seeds", Seed), "seeds")
    concepts = _index(ctx.read("concepts", Concepts), "concepts")
    instructions = _index(ctx.read("instructions", Instruction), "instructions")
    responses = ctx.read("responses", Response)
    executions: dict[str, Execution] = {}
    for e in ctx.read("executions", Execution):
        if e.parent_id in executions:
            raise ValueError(f"response {e.parent_id} has two executions; the executions step output is corrupt")
        executions[e.parent_id] = e
    return Inputs(seeds, concepts, instructions, responses, executions)


def join(inputs: Inputs) -> list[Candidate]:
    """Every response with its execution and lineage, by response id; a missing link fails with its name."""
    out = []
    for r in sorted(inputs.responses, key=lambda r: r.id):
        if r.id not in inputs.executions:
            raise ValueError(f"response {r.id} has no execution in the 'executions' input; re-run the executions step")
        inst = _parent(inputs.instructions, r.parent_id, "instructions", f"response {r.id}")
        conc = _parent(inputs.concepts, inst.parent_id, "concepts", f"instruction {inst.id}")
        sd = _parent(inputs.seeds, conc.parent_id, "seeds", f"concepts {conc.id}")
        out.append(Candidate(r, inputs.executions[r.id], inst, conc, sd, prompt=inst.text))
    return out


def _index(records: Sequence[Any], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in records:
        if r.id in out:
            raise ValueError(f"input '{what}' has the id {r.id} twice; its step output is corrupt, re-run that step")
        out[r.id] = r
    return out


def _parent(index: Mapping[str, Any], parent_id: str, what: str, child: str) -> Any:
    if parent_id not in index:
        raise ValueError(
            f"{child} points to {what} {parent_id!r}, which is not in the '{what}' input; "
            "the inputs come from different runs (check the step dependencies)"
        )
    return index[parent_id]


def apply(cands: list[Candidate], drops: list[Drop], *phases: Phase) -> list[Candidate]:
    """Apply ``phases`` one after the other: what they keep, returned; what they drop, appended to ``drops``."""
    for phase in phases:
        cands, dropped = phase(cands)
        drops += dropped
    return cands


def add_asserts(cands: Sequence[Candidate], *, seed: int, p: float, max_asserts: int) -> list[Candidate]:
    """Each candidate's prompt: its instruction, with some of its tests' asserts appended (paper C.1)."""
    return [
        dataclasses.replace(
            c,
            prompt=augment(
                c.instruction.text, c.response.tests, random.Random(f"{seed}:{c.response.id}:augment"), p, max_asserts
            ),
        )
        for c in cands
    ]


def removed_entry(d: Drop) -> dict[str, Any]:
    """One line of ``removed.jsonl``."""
    r = d.candidate.response
    entry: dict[str, Any] = {"response_id": r.id, "instruction_id": r.parent_id, "reason": d.reason, "detail": d.detail}
    if d.texts:
        entry["instruction"] = d.candidate.instruction.text
        entry["response"] = r.text
    return entry


def to_example(c: Candidate) -> SFTExample:
    return SFTExample(
        id=make_id(c.response.id, c.prompt),
        parent_id=c.response.id,
        prompt=[{"role": "user", "content": c.prompt}],
        completion=[{"role": "assistant", "content": c.response.text}],
        lineage={
            "seed": c.seed.id,
            "concepts": c.concepts.id,
            "instruction": c.instruction.id,
            "response": c.response.id,
            "execution": c.execution.id,
        },
    )


def print_funnel(funnel: Mapping[str, int]) -> None:
    rows = []
    prev = None
    for stage in FUNNEL:
        n = funnel[stage]
        rows.append((stage, n, f"{100 * n / prev:.1f}%" if prev else "-"))
        prev = n
    console.print(table("curation funnel", ["stage", "count", "of previous"], rows))
