"""Each curation phase is a pure function: its kept and dropped candidates partition its input."""

from __future__ import annotations

import random
from collections import Counter
from functools import partial

import pytest

from sca.curate.decontam import BenchmarkText, Decontaminator
from sca.curate.phases import (
    Candidate,
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
from sca.records import Concepts, Execution, Instruction, Response, Seed, make_id

SOLUTION = "def f(x):\n    return 2 * x\n"
PLANT = "def shout(text):\n    return text.upper() + ' is loud and clear for everyone'\n"
VOCAB = [f"w{i}" for i in range(300)]


def prose(i: int, n: int = 40) -> str:
    rng = random.Random(i)
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def cand(
    i: int,
    instruction: str | None = None,
    inst_key: str | None = None,
    verdict: str = "passed",
    strong: bool | None = True,
    solution: str = SOLUTION,
    text: str | None = None,
) -> Candidate:
    """Candidate ``i``; ``inst_key`` makes two candidates answer the same instruction."""
    code = f"def seed_{i}(x):\n    return x\n"
    s = Seed(id=make_id(code), parent_id="", code=code, name="s", source="t")
    c = Concepts(id=make_id(s.id, "c"), parent_id=s.id, concepts=["loops"])
    inst_text = instruction or f"Write a function that {prose(1000 + i)}."
    inst = Instruction(
        id=make_id(inst_key or c.id, inst_text), parent_id=c.id, text=inst_text, category="function", difficulty="easy"
    )
    text = text or f"{prose(i, 20)}\n\n```python\n{solution}```\n"
    r = Response(
        id=make_id(inst.id, str(i), text),
        parent_id=inst.id,
        sample=i,
        text=text,
        solution=solution,
        tests="assert f(1) == 2\n",
    )
    e = Execution(id=make_id(r.id, verdict), parent_id=r.id, verdict=verdict, strong_tests=strong)
    return Candidate(r, e, inst, c, s, prompt=inst.text)


def mixed() -> list[Candidate]:
    """Candidates that each phase below has something to drop from, and something to keep."""
    twin = f"Write a function that {prose(7)}."
    same_response = f"Shared words.\n\n```python\n{SOLUTION}```\n"
    return [
        cand(0, twin, inst_key="twin"),
        cand(1, verdict="failed"),
        cand(2, strong=False),
        cand(3, strong=None),
        cand(4, solution="def f(:\n", text=same_response),
        cand(5, "Write a function. " + "x" * 400),
        cand(6, twin, inst_key="twin"),  # a second response to the same instruction as 0
        cand(7, twin.replace(" ", "  ")),  # the same text, another instruction
        cand(8, twin[:-1] + " quickly."),  # a near duplicate of it
        cand(9, text=f"Here:\n\n```python\n{PLANT}```\n", solution=PLANT),
        cand(10, text=same_response),
        cand(11),
    ]


DECON = Decontaminator([BenchmarkText("HumanEval/0", "solution", PLANT)], ngram=10)
PHASES: dict[str, tuple[Phase, dict[str, int]]] = {
    "passing": (passing, {"not_passed": 1}),
    "strong_tests": (partial(strong_tests, required=True), {"weak_tests": 1, "tests_not_stub_checked": 1}),
    "strong_tests_off": (partial(strong_tests, required=False), {}),
    "well_formed": (well_formed, {"format_solution_unparsable": 1}),
    "short_instructions": (partial(short_instructions, max_chars=300, max_words=200), {"instruction_too_long": 1}),
    "one_per_instruction": (partial(one_per_instruction, seed=0), {"not_selected": 1}),
    "exact_dedup": (partial(exact_dedup, seed=0), {"duplicate_instruction": 2, "duplicate_response": 1}),
    "near_dedup": (
        partial(near_dedup, field="instruction", threshold=0.7, num_perm=128, ngram=3, seed=0),
        {"near_duplicate_instruction": 3},
    ),
    "decontaminate": (partial(decontaminate, decon=DECON), {"contaminated": 1}),
    "decontaminate_off": (partial(decontaminate, decon=None), {}),
}


@pytest.mark.parametrize("name", sorted(PHASES))
def test_a_phase_partitions_its_input_and_names_each_drop(name: str) -> None:
    phase, expected = PHASES[name]
    cands = mixed()
    before = list(cands)
    kept, drops = phase(cands)
    assert cands == before  # the input is left as it was
    out = [c.response.id for c in kept] + [d.candidate.response.id for d in drops]
    assert sorted(out) == sorted(c.response.id for c in cands)  # every input exactly once: kept or dropped
    assert all(c in cands for c in kept) and all(d.candidate in cands for d in drops)
    assert dict(Counter(d.reason for d in drops)) == expected
    assert (kept, drops) == phase(mixed())  # the same input, the same answer


def test_drops_say_why_and_keep_texts_only_for_reviewable_samples() -> None:
    kept, drops = passing(mixed())
    assert [(d.reason, d.detail, d.texts) for d in drops] == [("not_passed", "failed", False)]
    _, drops = short_instructions(kept, max_chars=300, max_words=200)
    assert [(d.reason, d.detail, d.texts) for d in drops] == [("instruction_too_long", "418 chars", True)]
    _, drops = one_per_instruction(kept, seed=0)
    (d,) = drops
    assert d.texts is False and d.detail in {
        c.response.id for c in kept if c.instruction.id == d.candidate.instruction.id
    }
    _, drops = decontaminate(kept, decon=DECON)
    assert [(d.reason, d.detail) for d in drops] == [("contaminated", "exact:HumanEval/0")]


@pytest.mark.parametrize("name", ["one_per_instruction", "exact_dedup"])
def test_selection_and_exact_dedup_do_not_depend_on_input_order(name: str) -> None:
    phase, _ = PHASES[name]
    shuffled = mixed()
    random.Random(3).shuffle(shuffled)
    assert phase(shuffled) == phase(mixed()) == phase(mixed()[::-1])


def test_the_seed_decides_which_response_of_an_instruction_is_kept() -> None:
    picks = set()
    for seed in range(20):
        kept, _ = one_per_instruction(mixed(), seed=seed)
        picks.add(next(c.response.id for c in kept if c.instruction.id == mixed()[0].instruction.id))
    assert picks == {mixed()[0].response.id, mixed()[6].response.id}
