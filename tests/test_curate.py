"""Curation: each rule with positive and negative cases, decontamination, funnel, determinism, resume."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from sca.benchmarks import BenchmarkFiles
from sca.config import CurateConfig
from sca.curate import step as curate
from sca.curate.step import CurateParams
from sca.io import iter_records, write_finished_step
from sca.records import Concepts, Execution, Instruction, Response, Seed, SFTExample, make_id
from sca.step import StepContext

WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
    "amber",
    "basil",
    "cedar",
    "dune",
    "ember",
    "fjord",
    "grove",
    "heath",
    "iris",
    "jade",
    "kelp",
    "lotus",
    "maple",
    "nectar",
    "olive",
    "pearl",
    "quartz",
    "raven",
    "sage",
    "thyme",
    "umber",
    "violet",
    "willow",
    "yarrow",
    "zinnia",
]


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def response_text(solution: str, prose: str) -> str:
    return f"{prose}\n\n```python\n{solution}```\n"


@dataclasses.dataclass
class Data:
    seeds: list[Seed] = dataclasses.field(default_factory=list)
    concepts: list[Concepts] = dataclasses.field(default_factory=list)
    instructions: list[Instruction] = dataclasses.field(default_factory=list)
    responses: list[Response] = dataclasses.field(default_factory=list)
    executions: list[Execution] = dataclasses.field(default_factory=list)

    def task(self, instruction: str | None = None, rng: random.Random | None = None) -> Instruction:
        rng = rng or random.Random(len(self.instructions))
        code = f"def seed_{len(self.seeds)}(x):\n    '''Doc.'''\n    return x\n"
        s = Seed(id=make_id(code), parent_id="", code=code, name="s", source="t")
        c = Concepts(id=make_id(s.id, "c"), parent_id=s.id, concepts=["loops"])
        text = instruction or f"Write a function: {words(rng, 30)}."
        i = Instruction(id=make_id(c.id, text), parent_id=c.id, text=text, category="function", difficulty="easy")
        self.seeds.append(s)
        self.concepts.append(c)
        self.instructions.append(i)
        return i

    def respond(
        self,
        inst: Instruction,
        verdict: str = "passed",
        solution: str | None = None,
        tests: str | None = None,
        text: str | None = None,
        rng: random.Random | None = None,
    ) -> Response:
        rng = rng or random.Random(f"{inst.id}:{len(self.responses)}")
        name = f"fn_{rng.choice(WORDS)}_{rng.randrange(10**6)}"
        solution = (
            solution
            or f"def {name}(x):\n    {rng.choice(WORDS)} = x * {rng.randrange(100)}\n    return {rng.choice(WORDS)} if x else x + {rng.randrange(100)}\n"
        )
        tests = tests if tests is not None else f"assert {name}(0) is not None\n"
        text = text or response_text(solution, f"Here is a solution: {words(rng, 25)}.")
        r = Response(
            id=make_id(inst.id, str(len(self.responses)), text),
            parent_id=inst.id,
            sample=len(self.responses),
            text=text,
            solution=solution,
            tests=tests,
        )
        self.responses.append(r)
        self.executions.append(Execution(id=make_id(r.id, verdict), parent_id=r.id, verdict=verdict))
        return r


def ctx_for(
    tmp: Path,
    data: Data,
    name: str = "out",
    seed: int = 0,
    files: tuple[str, str] = ("", ""),
    decontaminate: Sequence[str] = (),
    **over: Any,
) -> StepContext[CurateParams]:
    inputs = {
        k: write_finished_step(tmp / f"{name}-in" / k, getattr(data, k))
        for k in ("seeds", "concepts", "instructions", "responses", "executions")
    }
    # The benchmarks go in as the planner gives them (names, hashes, files); the config names the known ones.
    cfg = CurateConfig(decontaminate=[b for b in decontaminate if b in ("humaneval", "mbpp")], **over)
    paths = {"humaneval": files[0], "mbpp": files[1]}
    benchmarks = BenchmarkFiles({b: f"test:{b}" for b in decontaminate}, paths, {b: "" for b in paths}, str(tmp))
    (tmp / name).mkdir()
    return StepContext(name="sft_data", out=tmp / name, inputs=inputs, params=CurateParams(cfg, benchmarks, seed))


def outputs(ctx: StepContext) -> list[SFTExample]:
    return list(iter_records(ctx.out / "records-00000.jsonl", SFTExample))


def removed(ctx: StepContext) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (ctx.out / curate.REMOVED).read_text().splitlines()]


def test_sft_format_lineage_and_funnel(tmp_path: Path) -> None:
    d = Data()
    insts = [d.task() for _ in range(4)]
    for i in insts:
        d.respond(i)
    d.respond(insts[0], verdict="failed")
    ctx = ctx_for(tmp_path, d)
    counters = curate.run(ctx)
    out = outputs(ctx)
    assert len(out) == 4
    by_resp = {r.id: r for r in d.responses}
    for ex in out:
        r = by_resp[ex.parent_id]
        assert ex.prompt == [{"role": "user", "content": next(i.text for i in insts if i.id == r.parent_id)}]
        assert ex.completion == [{"role": "assistant", "content": r.text}]
        assert r.tests not in ex.completion[0]["content"]
        assert set(ex.lineage) == {"seed", "concepts", "instruction", "response", "execution"}
        assert ex.lineage["execution"] == next(e.id for e in d.executions if e.parent_id == r.id)
    assert {k: v for k, v in counters.items() if k.startswith("funnel_")} == {
        "funnel_seeds": 4, "funnel_concepts": 4, "funnel_instructions": 4, "funnel_responses": 5,
        "funnel_passed": 4, "funnel_selected": 4, "funnel_dedup": 4, "funnel_decontam": 4,
    }  # fmt: skip
    assert counters["dropped_not_passed"] == 1
    assert [(e["reason"], e["detail"]) for e in removed(ctx)] == [("not_passed", "failed")]


def test_one_random_passing_response_per_instruction(tmp_path: Path) -> None:
    d = Data()
    insts = [d.task() for _ in range(12)]
    for i in insts:
        for _ in range(4):
            d.respond(i)
    picks = []
    for seed in (0, 1):
        ctx = ctx_for(tmp_path, d, name=f"s{seed}", seed=seed)
        counters = curate.run(ctx)
        assert counters["dropped_not_selected"] == 36 and counters["funnel_selected"] == 12
        picks.append({ex.parent_id for ex in outputs(ctx)})
    assert picks[0] != picks[1]  # the choice depends on the seed (1 in 4^12 to collide by chance)


FORMAT_CASES = {
    "format_solution_unparsable": {"solution": "def f(:\n"},
    "format_tests_unparsable": {"tests": "assert (\n"},
    "format_tests_no_assert": {"tests": "print(fn(1))\n"},
    "format_tests_not_invoked": {"tests": "import math\ndef test_it():\n    assert fn(1) == 2\n"},
    "format_no_code_block": {"text": "The answer is to multiply x by two and return it, no code shown here."},
    "format_tests_in_response": {
        "tests": "assert fn(1) == 2\n",
        "text": response_text("def fn(x):\n    return 2 * x\n", "Sure.") + "assert fn(1) == 2\n",
    },
    "format_placeholder": {"solution": "def fn(x):\n    # TODO: handle negatives\n    return 2 * x\n"},
}


@pytest.mark.parametrize("reason", sorted(FORMAT_CASES))
def test_format_checks(tmp_path: Path, reason: str) -> None:
    d = Data()
    kw = dict(FORMAT_CASES[reason])
    kw.setdefault("solution", "def fn(x):\n    return 2 * x\n")
    if "text" not in kw:
        kw["text"] = response_text(kw["solution"], "Sure.")
    bad = d.respond(d.task(), **kw)
    good = d.respond(d.task())
    ctx = ctx_for(tmp_path, d)
    counters = curate.run(ctx)
    assert counters[f"dropped_{reason}"] == 1
    assert [ex.parent_id for ex in outputs(ctx)] == [good.id]
    assert [(e["response_id"], e["reason"]) for e in removed(ctx)] == [(bad.id, reason)]


@pytest.mark.parametrize(
    "tests",
    [
        "assert fn(1) == 2\n",
        "import unittest\nclass T(unittest.TestCase):\n    def test(self):\n        self.assertEqual(fn(1), 2)\nunittest.main()\n",
        "def check():\n    assert fn(1) == 2\ncheck()\n",
    ],
)
def test_well_formed_tests_pass_format(tests: str) -> None:
    sol = "def fn(x):\n    return 2 * x\n"
    r = Response(
        id="r",
        parent_id="i",
        sample=0,
        text=response_text(sol, "Sure, todos are listed below."),
        solution=sol,
        tests=tests,
    )
    assert curate.format_problem(r) is None  # "todos" is not the placeholder word "todo"


def test_length_limit_and_exact_dedup(tmp_path: Path) -> None:
    d = Data()
    long = d.task("Write a function. " + "x" * 300)
    d.respond(long)
    same1, same2 = d.task("Sort a list of words by length."), d.task("Sort a list of words  by\nlength.")
    d.respond(same1)
    d.respond(same2)
    ra = d.respond(d.task())
    d.respond(d.task(), text=ra.text)  # a different instruction, the same response
    ctx = ctx_for(tmp_path, d, max_instruction_chars=200)
    counters = curate.run(ctx)
    assert counters["dropped_instruction_too_long"] == 1
    assert counters["dropped_duplicate_instruction"] == 1
    assert counters["dropped_duplicate_response"] == 1
    assert counters["funnel_selected"] == 2


def test_word_cap_drops_long_instructions(tmp_path: Path) -> None:
    d = Data()
    rng = random.Random(7)
    at_cap, over_cap = d.task(words(rng, 200)), d.task(words(rng, 201))
    d.respond(at_cap)
    d.respond(over_cap)
    ctx = ctx_for(tmp_path, d)  # the default cap: the method's 200 words
    counters = curate.run(ctx)
    assert counters["dropped_instruction_too_many_words"] == 1
    assert [e["detail"] for e in removed(ctx)] == ["201 words"]
    assert [ex.prompt[0]["content"] for ex in outputs(ctx)] == [at_cap.text]
    uncapped = ctx_for(tmp_path, d, name="uncapped", max_instruction_words=0)
    assert curate.run(uncapped)["funnel_selected"] == 2


def test_near_dedup_on_instruction_response_and_skeleton(tmp_path: Path) -> None:
    d = Data()
    rng = random.Random(7)
    base = f"Write a function that {words(rng, 40)}"
    d.respond(d.task(base))
    d.respond(d.task(base + " quickly"))  # near-duplicate instruction
    same_code = "def fn(x):\n    '''Twice x.'''\n    # the simple way\n    return 2 * x\n"
    d.respond(d.task(), solution=same_code, text=response_text(same_code, f"First: {words(rng, 30)}"))
    other = "def fn(x):\n    return 2 * x\n"
    d.respond(d.task(), solution=other, text=response_text(other, f"Second: {words(rng, 30)}"))
    ctx = ctx_for(tmp_path, d)
    counters = curate.run(ctx)
    assert counters["dropped_near_duplicate_instruction"] == 1
    assert counters["dropped_near_duplicate_skeleton"] == 1
    assert counters["funnel_dedup"] == counters["funnel_selected"] - 2
    near = [e for e in removed(ctx) if e["reason"].startswith("near_duplicate")]
    assert all(e["detail"] in {r.id for r in d.responses} for e in near)


def test_near_dedup_on_response(tmp_path: Path) -> None:
    d = Data()
    rng = random.Random(3)
    prose = f"Here is my solution: {words(rng, 50)}"
    d.respond(d.task(), text=response_text("def a(x):\n    return x\n", prose), solution="def a(x):\n    return x\n")
    d.respond(
        d.task(),
        text=response_text("def a(x):\n    return x\n", prose + " done"),
        solution="def b(y):\n    return y + 1\n",
    )
    counters = curate.run(ctx_for(tmp_path, d))
    assert counters["dropped_near_duplicate_response"] == 1


def test_planted_humaneval_solution_is_decontaminated(
    tmp_path: Path, humaneval_plus_path: Path, mbpp_plus_path: Path
) -> None:
    from evalplus.data.utils import stream_jsonl

    task = next(t for t in stream_jsonl(str(humaneval_plus_path)) if t["task_id"] == "HumanEval/12")
    planted = task["prompt"] + task["canonical_solution"]
    d = Data()
    bad = d.respond(
        d.task("Find the longest string in a list."), solution=planted, text=response_text(planted, "Like so:")
    )
    para = d.respond(
        d.task(
            "Out of a list of strings, return the longest one. Return the first one in case of multiple strings of the same length."
        )
    )
    good = d.respond(d.task())
    files = (str(humaneval_plus_path), str(mbpp_plus_path))
    ctx = ctx_for(tmp_path, d, files=files, decontaminate=["humaneval", "mbpp"])
    counters = curate.run(ctx)
    assert counters["dropped_contaminated"] == 2 and counters["funnel_decontam"] == 1
    assert [ex.parent_id for ex in outputs(ctx)] == [good.id]
    reasons = {e["response_id"]: e["detail"] for e in removed(ctx)}
    assert reasons[bad.id] == "exact:HumanEval/12"
    assert reasons[para.id] == "ngram10:HumanEval/12"
    assert next(e for e in removed(ctx) if e["response_id"] == bad.id)["response"] == bad.text


def test_augmentation_puts_asserts_into_the_instruction(tmp_path: Path) -> None:
    d = Data()
    sol = "def fn(x):\n    return 2 * x\n"
    tests = "assert fn(1) == 2\nassert fn(2) == 4\nassert fn(0) == 0\n"
    r1 = d.respond(d.task(), solution=sol, tests=tests, text=response_text(sol, "Doubling."))
    blocked = d.task("Double a number; include a test.")
    sol2 = "def fn(x):\n    return x + x\n"
    d.respond(blocked, solution=sol2, tests=tests, text=response_text(sol2, "Doubling again, differently worded."))
    ctx = ctx_for(tmp_path, d, augment_asserts_p=1.0, augment_max_asserts=2)
    counters = curate.run(ctx)
    assert counters["augmented"] == 1
    by_parent = {ex.parent_id: ex.prompt[0]["content"] for ex in outputs(ctx)}
    aug = by_parent[r1.id]
    assert "Your code should pass the following assertion" in aug and "```python\nassert fn(" in aug
    assert 1 <= aug.count("assert fn(") <= 2
    assert blocked.text in by_parent.values()
    assert curate.augment("task", tests, random.Random(0), 0.0, 3) == "task"  # off by default


def test_byte_for_byte_determinism_independent_of_input_order(tmp_path: Path) -> None:
    d = Data()
    for _ in range(30):
        i = d.task()
        for v in ("passed", "passed", "failed"):
            d.respond(i, verdict=v)
    a = ctx_for(tmp_path, d, name="a", augment_asserts_p=0.5)
    curate.run(a)
    shuffled = Data(
        **{f.name: random.Random(1).sample(getattr(d, f.name), len(getattr(d, f.name))) for f in dataclasses.fields(d)}
    )
    b = ctx_for(tmp_path, shuffled, name="b", augment_asserts_p=0.5)
    curate.run(b)
    for f in ("records-00000.jsonl", curate.REMOVED):
        assert (a.out / f).read_bytes() == (b.out / f).read_bytes()
    assert len(outputs(a)) == 30


def test_resume_after_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = Data()
    for _ in range(6):
        d.respond(d.task())
    full = ctx_for(tmp_path, d, name="full")
    expected = curate.run(full)

    real = curate.augment
    calls = [0]

    def crash(*a: Any) -> str:
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt("killed")
        return real(*a)

    monkeypatch.setattr(curate, "augment", crash)
    ctx = ctx_for(tmp_path, d, name="crash")
    with pytest.raises(KeyboardInterrupt):
        curate.run(ctx)
    assert (ctx.out / "records-00000.jsonl").read_bytes() == b""
    assert curate.run(ctx) == expected
    assert (ctx.out / "records-00000.jsonl").read_bytes() == (full.out / "records-00000.jsonl").read_bytes()
    calls[0] = -100
    assert curate.run(ctx) == expected  # finished: returns its counters without recomputing


def test_bad_inputs_fail_with_a_clear_message(tmp_path: Path) -> None:
    d = Data()
    r = d.respond(d.task())
    d.executions.clear()
    with pytest.raises(ValueError, match=f"response {r.id} has no execution"):
        curate.run(ctx_for(tmp_path, d, name="a"))
    d2 = Data()
    d2.respond(d2.task())
    d2.instructions.clear()
    with pytest.raises(ValueError, match="not in the 'instructions' input"):
        curate.run(ctx_for(tmp_path, d2, name="b"))
    with pytest.raises(ValueError, match="max_instruction_chars"):
        curate.run(ctx_for(tmp_path, Data(), name="c", max_instruction_chars=0))
    with pytest.raises(ValueError, match="unknown decontamination benchmarks"):
        curate.run(ctx_for(tmp_path, Data(), name="d", decontaminate=["gsm8k"]))


@pytest.mark.parametrize("required", [False, True])
def test_weak_tests_are_dropped_only_when_strong_tests_are_required(tmp_path: Path, required: bool) -> None:
    d = Data()
    insts = [d.task() for _ in range(3)]
    for inst, strong in zip(insts, [True, False, None], strict=True):
        r = d.respond(inst)
        d.executions[-1] = dataclasses.replace(d.executions[-1], strong_tests=strong)
        assert d.executions[-1].parent_id == r.id
    ctx = ctx_for(tmp_path, d, require_strong_tests=required)
    counters = curate.run(ctx)
    kept = {ex.parent_id for ex in outputs(ctx)}
    if not required:
        assert len(kept) == 3 and not any(k.startswith("dropped_") for k in counters)
        return
    assert kept == {d.responses[0].id}
    assert counters["dropped_weak_tests"] == 1 and counters["dropped_tests_not_stub_checked"] == 1
    assert {e["reason"]: e["response_id"] for e in removed(ctx)} == {
        "weak_tests": d.responses[1].id,
        "tests_not_stub_checked": d.responses[2].id,
    }
