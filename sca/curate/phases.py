"""The curation phases, in the order the ``sft_data`` step applies them: ``phase(candidates) -> (kept, drops)``.

A phase is a pure function. It reads no config (what it needs comes as keyword arguments, which the step
binds with ``functools.partial``), never changes its input, and puts every input candidate in exactly one
of its two outputs: ``kept`` (in the order the next phase walks) or ``drops``, each :class:`Drop` naming
why (counted as ``dropped_<reason>`` and written to ``removed.jsonl``).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sca.curate.decontam import Decontaminator
from sca.curate.dedup import code_skeleton, find_near_duplicates
from sca.curate.format import format_problem
from sca.records import Concepts, Execution, Instruction, Response, Seed, make_id


@dataclass(frozen=True, slots=True)
class Candidate:
    """A response with its execution and lineage; ``prompt`` is the instruction as it will be trained on."""

    response: Response
    execution: Execution
    instruction: Instruction
    concepts: Concepts
    seed: Seed
    prompt: str


@dataclass(frozen=True, slots=True)
class Drop:
    candidate: Candidate
    reason: str
    detail: str = ""
    texts: bool = True  # removed.jsonl keeps the instruction and response: not for failed or unpicked samples


Phase = Callable[[Sequence[Candidate]], tuple[list[Candidate], list[Drop]]]


def passing(cands: Sequence[Candidate]) -> tuple[list[Candidate], list[Drop]]:
    """Only responses whose tests passed in the sandbox."""
    kept, drops = [], []
    for c in cands:
        if c.execution.verdict == "passed":
            kept.append(c)
        else:
            drops.append(Drop(c, "not_passed", c.execution.verdict, texts=False))
    return kept, drops


def strong_tests(cands: Sequence[Candidate], *, required: bool) -> tuple[list[Candidate], list[Drop]]:
    """With ``required``, only responses whose tests failed against a stub solution (beyond the paper)."""
    if not required:
        return list(cands), []
    kept, drops = [], []
    for c in cands:
        strong = c.execution.strong_tests
        if strong is True:
            kept.append(c)
        else:  # tests that also pass when every function returns None check nothing
            drops.append(Drop(c, "weak_tests" if strong is False else "tests_not_stub_checked"))
    return kept, drops


def well_formed(cands: Sequence[Candidate]) -> tuple[list[Candidate], list[Drop]]:
    """Only responses whose solution and tests parse, whose tests test, shown in a code block (:mod:`.format`)."""
    kept, drops = [], []
    for c in cands:
        problem = format_problem(c.response)
        if problem:
            drops.append(Drop(c, problem))
        else:
            kept.append(c)
    return kept, drops


def short_instructions(
    cands: Sequence[Candidate], *, max_chars: int, max_words: int
) -> tuple[list[Candidate], list[Drop]]:
    """Only instructions of at most ``max_chars`` characters and ``max_words`` words (0 = no word cap)."""
    kept, drops = [], []
    for c in cands:
        text = c.instruction.text
        if len(text) > max_chars:
            drops.append(Drop(c, "instruction_too_long", f"{len(text)} chars"))
        elif 0 < max_words < len(text.split()):
            drops.append(Drop(c, "instruction_too_many_words", f"{len(text.split())} words"))
        else:
            kept.append(c)
    return kept, drops


def one_per_instruction(cands: Sequence[Candidate], *, seed: int) -> tuple[list[Candidate], list[Drop]]:
    """One random response per instruction (``random.Random(f"{seed}:{instruction_id}")``), by instruction id."""
    groups: dict[str, list[Candidate]] = defaultdict(list)
    for c in cands:
        groups[c.instruction.id].append(c)
    kept, drops = [], []
    for inst_id in sorted(groups):
        group = sorted(groups[inst_id], key=lambda c: c.response.id)
        pick = random.Random(f"{seed}:{inst_id}").randrange(len(group))
        kept.append(group[pick])
        drops += [
            Drop(c, "not_selected", group[pick].response.id, texts=False) for i, c in enumerate(group) if i != pick
        ]
    return kept, drops


def exact_dedup(cands: Sequence[Candidate], *, seed: int) -> tuple[list[Candidate], list[Drop]]:
    """Exact duplicates of instructions, then of responses (whitespace removed); the first one seen wins.

    The walk is a seeded shuffle (sorted by ``make_id(seed, response_id)``), so which copy survives does not
    depend on input order or sharding; the kept candidates stay in that order for the near dedup.
    """
    seen_inst: dict[str, str] = {}
    seen_resp: dict[str, str] = {}
    kept, drops = [], []
    for c in sorted(cands, key=lambda c: make_id(str(seed), c.response.id)):
        ki, kr = _squash(c.instruction.text), _squash(c.response.text)
        if ki in seen_inst:
            drops.append(Drop(c, "duplicate_instruction", seen_inst[ki]))
        elif kr in seen_resp:
            drops.append(Drop(c, "duplicate_response", seen_resp[kr]))
        else:
            seen_inst[ki], seen_resp[kr] = c.response.id, c.response.id
            kept.append(c)
    return kept, drops


def _squash(text: str) -> str:
    return "".join(text.split())


# What near dedup compares, one field after the other: the solution's skeleton ignores docstrings,
# comments and demo code, so two solutions that differ only there are duplicates.
NEAR_FIELDS: dict[str, Callable[[Candidate], str]] = {
    "instruction": lambda c: c.instruction.text,
    "response": lambda c: c.response.text,
    "skeleton": lambda c: code_skeleton(c.response.solution),
}


def near_dedup(
    cands: Sequence[Candidate], *, field: str, threshold: float, num_perm: int, ngram: int, seed: int
) -> tuple[list[Candidate], list[Drop]]:
    """MinHash near-duplicates of one of :data:`NEAR_FIELDS`, first occurrence wins (:mod:`.dedup`)."""
    get = NEAR_FIELDS[field]
    keep, dups = find_near_duplicates([get(c) for c in cands], threshold, num_perm, ngram, seed)
    drops = [Drop(cands[i], f"near_duplicate_{field}", cands[j].response.id) for i, j in sorted(dups.items())]
    return [cands[i] for i in keep], drops


def decontaminate(cands: Sequence[Candidate], *, decon: Decontaminator | None) -> tuple[list[Candidate], list[Drop]]:
    """Examples whose final text (prompt + response) leaks a benchmark item; ``None`` keeps every one."""
    if decon is None:
        return list(cands), []
    kept, drops = [], []
    for c in cands:
        hit = decon.check(c.prompt + "\n\n" + c.response.text)
        if hit:
            drops.append(Drop(c, "contaminated", hit))
        else:
            kept.append(c)
    return kept, drops
