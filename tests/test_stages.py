"""The S->C, C->I, I->R and judge steps end to end: a scripted backend (exact counts), the real hf
backend on the tiny model (parse failures counted), determinism, and resume after a crash."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sca.config import ConfigError, GenerateConfig
from sca.generate import batches
from sca.generate.concepts import ConceptsParams
from sca.generate.instructions import InstructionsParams
from sca.generate.judge import JudgeParams
from sca.generate.prompting import EXAMPLE_HEADER
from sca.generate.responses import ResponsesParams
from sca.io import MERGED, read_records
from sca.llm.contract import Completion, LLMParams, Request
from sca.records import Concepts, Instruction, Response, Seed, make_id
from sca.runner import run_plan
from sca.step import Step, StepContext
from tests.helpers.params import llm_params

GEN = GenerateConfig()

# ---- a scripted backend: answers depend only on the query (and the sample), never on the batch ----------


def query_of(request: Request) -> str:
    """The part of the prompt that is about this record (after the few-shot examples)."""
    if isinstance(request.prompt, list):
        return request.prompt[-1]["content"]
    return request.prompt.rsplit(EXAMPLE_HEADER, 1)[-1]


def digest(request: Request) -> str:
    return hashlib.sha256(json.dumps([request.prompt, request.prefix, request.seed]).encode()).hexdigest()[:6]


def respond_concepts(q: str, _: int) -> tuple[str, str]:
    if "empty_" in q:
        return "\n\n", "stop"
    if "cut_" in q:
        return "recursion, str", "length"
    name = re.search(r"def (\w+)", q)
    return f"naming {name.group(1) if name else '?'}, loops\n\n## Exa", "stop"


def respond_instructions(q: str, _: int) -> tuple[str, str]:
    if "empty_" in q:
        return "", "stop"
    category = re.search(r"category: (\w+)", q)
    concepts = re.search(r"concepts: (.*)", q)
    assert category and concepts
    return f"Write a {category.group(1)} about {concepts.group(1)}.\n", "stop"


SOLUTION = "Reasoning.\n\n```python\ndef f():\n    return 1\n```\n</response>\n\n<tests>\nChecks:\n\n```python\nassert f() == 1\n```\n"


def respond_responses(q: str, sample: int) -> tuple[str, str]:
    # Sample 0 is good, 1 stops after its code without tests, 2 is cut by the token limit after its code,
    # 3 has two solution blocks.
    outcomes = [
        (SOLUTION.replace("return 1", f"return 1  # {q.strip()[:40]!r}"), "stop"),
        (SOLUTION.split("</response>")[0], "stop"),
        (SOLUTION.split("</response>")[0] + "\nThis works because", "length"),
        (SOLUTION.replace("Reasoning.", "Reasoning.\n\n```python\nprint(1)\n```"), "stop"),
    ]
    return outcomes[sample % 4]


def respond_judge(q: str, _: int) -> tuple[str, str]:
    if "unclear" in q:
        return "Perhaps\n", "stop"
    return ("Yes\nClear." if "Clearly documented" in q else "No\nVague."), "stop"


SCRIPTS: dict[str, Callable[[str, int], tuple[str, str]]] = {
    "concepts": respond_concepts,
    "instructions": respond_instructions,
    "responses": respond_responses,
    "judge": respond_judge,
}


class ScriptedBackend:
    """Implements the Backend protocol; can crash after ``crash_after`` generate calls."""

    log: list[list[Request]] = []  # every generate call, across instances (for resume assertions)

    def __init__(self, crash_after: int = -1) -> None:
        self.crash_after = crash_after
        self.calls = 0
        self.closed = False

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        if self.calls == self.crash_after:
            raise RuntimeError("backend died")
        self.calls += 1
        ScriptedBackend.log.append(list(requests))
        out = []
        for r in requests:
            stage = _stage_of(r)
            if stage == "responses" and "<tests>" in r.prefix:  # a follow-up asking for the missing tests
                out.append([Completion("f() == 1\n```\n", "stop", len(str(r.prompt)) // 4, 4)] * r.n)
                continue
            completions = []
            for i in range(r.n):
                text, reason = SCRIPTS[stage](query_of(r), i)
                # The text carries a digest of the full prompt, so any change in few-shot choice shows up.
                if stage in ("instructions",) and text:
                    text = text.rstrip("\n") + f" [{digest(r)}]\n"
                completions.append(Completion(text, reason, len(str(r.prompt)) // 4, len(text) // 4))
            out.append(completions)
        return out

    def close(self) -> None:
        self.closed = True


def _stage_of(r: Request) -> str:
    q = query_of(r)
    if "### Snippet" in q:
        return "concepts"
    if "### Properties" in q:
        return "instructions"
    if "<task>" in q:
        return "responses"
    return "judge"


# ---- building and running the steps --------------------------------------------------------------------


KINDS: dict[str, type[Any]] = {"Seed": Seed, "Concepts": Concepts, "Instruction": Instruction}


def emit(ctx: StepContext) -> dict[str, float]:
    """A source step: the records in params["records"], of type params["kind"] (default Seed)."""
    journal = ctx.journal()
    cls = KINDS[ctx.params.get("kind", "Seed")]
    records = [cls(**row) for row in ctx.params["records"]]
    journal.commit(["all"], records, {"out": len(records)})
    journal.close()
    return dict(journal.counters)


def seed_record(name: str, doc: str = "Clearly documented.") -> dict[str, str]:
    code = f'def {name}(x):\n    """{doc}"""\n    return x\n' if doc else f"def {name}(x):\n    return x\n"
    return {"id": make_id(code), "parent_id": "", "code": code, "name": name, "source": "test"}


SEEDS = [seed_record(f"good_{i}") for i in range(5)] + [seed_record("empty_0"), seed_record("cut_0")]


def plan(
    seeds: list[dict[str, str]] = SEEDS,
    *,
    seed: int = 0,
    batch_size: int = 2,
    chat: bool = False,
    n: int = 4,
    llm: LLMParams | None = None,
    max_tokens: int | None = None,
    num_fewshots: int | None = None,
    continue_for_tests: bool = False,
    judge_limit: int = 0,
) -> dict[str, Step]:
    model = llm or llm_params("scripted", chat=chat, batch_size=batch_size)

    def stage(conf: Any) -> Any:  # a copy: the shared config is never mutated
        sampling = replace(conf.sampling, max_tokens=max_tokens or conf.sampling.max_tokens)
        shots = conf.num_fewshots if num_fewshots is None else min(num_fewshots, conf.num_fewshots)
        if conf is GEN.responses:
            sampling = replace(sampling, n=n)
            return replace(conf, sampling=sampling, num_fewshots=shots, continue_for_tests=continue_for_tests)
        return replace(conf, sampling=sampling, num_fewshots=shots)

    source = Step("seeds", "tests.test_stages:emit", {"records": seeds})
    judge = Step(
        "judged_seeds", "sca.generate.judge:run", JudgeParams(model, stage(GEN.judge), seed, judge_limit),
        {"seeds": source},
    )  # fmt: skip
    concepts = Step(
        "r0/concepts", "sca.generate.concepts:run", ConceptsParams(model, stage(GEN.concepts), seed), {"seeds": source}
    )
    instructions = Step(
        "r0/instructions",
        "sca.generate.instructions:run",
        InstructionsParams(model, stage(GEN.instructions), seed, GEN.categories, GEN.difficulties),
        {"concepts": concepts},
    )
    responses = Step(
        "r0/responses",
        "sca.generate.responses:run",
        ResponsesParams(model, stage(GEN.responses), seed),
        {"instructions": instructions},
    )
    return {"seeds": source, "judge": judge, "concepts": concepts, "instructions": instructions, "responses": responses}


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Route open_backend to a ScriptedBackend; call it again to change the crash point."""
    ScriptedBackend.log = []

    def use(crash_after: int = -1) -> None:
        def open_backend(llm: LLMParams, inputs: Mapping[str, Path]) -> ScriptedBackend:
            assert llm.model.name_or_path == "scripted"
            return ScriptedBackend(crash_after)

        monkeypatch.setattr(batches, "open_backend", open_backend)

    use()
    return use


def run(steps: dict[str, Step], store: Path, *names: str) -> dict[str, dict[str, float]]:
    chosen = [steps["seeds"], *(steps[n] for n in names)]
    return run_plan(chosen, store)


# ---- tests -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chat", [False, True])
def test_three_stages_on_the_scripted_backend(tmp_path: Path, scripted: Callable[..., None], chat: bool) -> None:
    steps = plan(chat=chat, continue_for_tests=True)
    stats = run(steps, tmp_path, "concepts", "instructions", "responses")
    c, i, r = (stats[f"r0/{s}"] for s in ("concepts", "instructions", "responses"))
    assert (c["in"], c["out"], c["dropped_empty"], c["dropped_truncated"]) == (7, 5, 1, 1)
    assert (i["in"], i["out"]) == (5, 5)
    # 5 instructions x 4 samples: 5 good, 5 that stopped before their tests (asked for them in a follow-up,
    # then good), 5 cut by max_tokens after their code (never continued: truncated), 5 with two blocks (one
    # solution).
    assert (r["in"], r["completions"], r["out"], r["follow_ups"]) == (5, 20, 15, 5)
    assert (r.get("dropped_no_tests", 0), r["dropped_truncated"]) == (0, 5)
    assert r["records"] == 15 and r["prompt_tokens"] > 0 and r["completion_tokens"] > 0
    kept = read_records(steps["responses"].out_dir(tmp_path), Response)
    followed = [x for x in kept if x.sample == 1]
    assert len(followed) == 5 and all(x.tests == "assert f() == 1\n" for x in followed)
    assert all("<tests>" not in x.text and x.text.rstrip().endswith("```") for x in followed)
    two_blocks = [x for x in kept if x.sample == 3]
    assert len(two_blocks) == 5 and all(x.solution.startswith("print(1)\n\ndef f():") for x in two_blocks)

    concepts = read_records(steps["concepts"].out_dir(tmp_path), Concepts)
    seeds = {s["id"]: s["name"] for s in SEEDS}
    assert sorted(seeds[c.parent_id] for c in concepts) == [f"good_{k}" for k in range(5)]
    assert all(c.concepts == [f"naming {seeds[c.parent_id]}", "loops"] for c in concepts)
    assert all(c.id == make_id(c.parent_id, *c.concepts) for c in concepts)

    instructions = read_records(steps["instructions"].out_dir(tmp_path), Instruction)
    for ins in instructions:
        assert ins.category in GEN.categories and ins.difficulty in GEN.difficulties
        assert ins.text.startswith(f"Write a {ins.category} about naming good_")
        assert ins.id == make_id(ins.parent_id, ins.text, ins.category, ins.difficulty)

    responses = read_records(steps["responses"].out_dir(tmp_path), Response)
    assert {x.parent_id for x in responses} == {x.id for x in instructions}
    for resp in responses:
        assert resp.sample in (0, 1, 3) and resp.tests == "assert f() == 1\n"
        assert "def f():" in resp.solution and "<tests>" not in resp.text and "assert" not in resp.text
        assert resp.id == make_id(resp.parent_id, str(resp.sample), resp.text)

    requests = [req for call in ScriptedBackend.log for req in call]
    assert all(isinstance(req.prompt, list) == chat for req in requests)
    asked = [req for req in requests if _stage_of(req) == "responses"]
    assert {req.n for req in asked if "<tests>" not in req.prefix} == {4}
    assert {req.n for req in asked if "<tests>" in req.prefix} == {1}, "follow-ups continue one sample each"
    assert max(len(call) for call in ScriptedBackend.log) == 2  # runtime batch_size


def test_without_continue_for_tests_a_sample_without_tests_is_dropped(
    tmp_path: Path, scripted: Callable[..., None]
) -> None:
    steps = plan()  # the method's setting: continue_for_tests off
    r = run(steps, tmp_path, "concepts", "instructions", "responses")["r0/responses"]
    assert (r["completions"], r["out"], r.get("follow_ups", 0)) == (20, 10, 0)
    assert (r["dropped_no_tests"], r["dropped_truncated"]) == (5, 5)
    assert not any("<tests>" in req.prefix for call in ScriptedBackend.log for req in call)
    assert {x.sample for x in read_records(steps["responses"].out_dir(tmp_path), Response)} == {0, 3}


def test_judge_keeps_seeds_judged_yes(tmp_path: Path, scripted: Callable[..., None]) -> None:
    seeds = [seed_record(f"good_{i}") for i in range(3)]
    seeds += [seed_record("vague", "Does stuff."), seed_record("nodoc", ""), seed_record("unclear", "unclear")]
    steps = plan(seeds)
    stats = run(steps, tmp_path, "judge")["judged_seeds"]
    assert (stats["in"], stats["out"], stats["judged_yes"]) == (6, 3, 3)
    assert (stats["dropped_judged_no"], stats["dropped_no_docstring"], stats["dropped_judge_unclear"]) == (1, 1, 1)
    kept = read_records(steps["judge"].out_dir(tmp_path), Seed)
    assert sorted(s.name for s in kept) == ["good_0", "good_1", "good_2"]
    judge_requests = [r for call in ScriptedBackend.log for r in call]
    assert len(judge_requests) == 5  # the seed without a docstring is never sent
    assert all(
        "Clearly documented" not in str(r.prompt).split("### Function")[-1].split("### Docstring")[0]
        for r in judge_requests
    )


def test_seeds_limit_is_the_count_after_the_judge(tmp_path: Path, scripted: Callable[..., None]) -> None:
    seeds = [seed_record(f"good_{i}") for i in range(5)] + [seed_record(f"vague_{i}", "Does stuff.") for i in range(2)]
    stats = run(plan(seeds, judge_limit=3), tmp_path / "a", "judge")["judged_seeds"]
    assert (stats["judge_in"], stats["judge_out"], stats["dropped_limit"], stats["kept"]) == (7, 5, 2, 3)
    kept = read_records(plan(seeds, judge_limit=3)["judge"].out_dir(tmp_path / "a"), Seed)
    assert len(kept) == stats["records"] == 3 and all(s.name.startswith("good_") for s in kept)

    # A crash after the first batch of verdicts: the resumed step judges only the rest, samples the same seeds.
    scripted(crash_after=1)
    with pytest.raises(RuntimeError, match="failed in a child process|backend died"):
        run(plan(seeds, judge_limit=3), tmp_path / "b", "judge")
    scripted()
    ScriptedBackend.log = []
    again = run(plan(seeds, judge_limit=3), tmp_path / "b", "judge")["judged_seeds"]
    assert sum(len(call) for call in ScriptedBackend.log) == 7 - 2, "the committed batch is not judged again"
    assert (again["judge_in"], again["judge_out"], again["kept"]) == (7, 5, 3)
    assert read_records(plan(seeds, judge_limit=3)["judge"].out_dir(tmp_path / "b"), Seed) == kept

    roomy = run(plan(seeds, judge_limit=10), tmp_path / "c", "judge")["judged_seeds"]
    assert roomy["kept"] == 5 and "dropped_limit" not in roomy


def test_the_seeds_step_leaves_the_limit_to_the_judge_when_it_is_on(tmp_path: Path) -> None:
    from sca.pipeline import build_pipeline
    from tests.test_config import composed

    judged = {s.name: s for s in build_pipeline(composed("experiment=codeqwen7b", f"paths.root={tmp_path}"))}
    assert judged["seeds"].params.seeds.limit == 0
    assert judged["judged_seeds"].params.limit == 250000
    plain = {
        s.name: s
        for s in build_pipeline(
            composed("experiment=qwen25coder7b", "generate.judge.enabled=false", f"paths.root={tmp_path}")
        )
    }
    assert "judged_seeds" not in plain and plain["seeds"].params.seeds.limit == 250000


def test_fixed_seed_gives_identical_records_whatever_the_batch_size(
    tmp_path: Path, scripted: Callable[..., None]
) -> None:
    files = []
    for store, batch_size in (("a", 2), ("b", 2), ("c", 3)):
        steps = plan(batch_size=batch_size)
        run(steps, tmp_path / store, "concepts", "instructions", "responses")
        files.append(
            [
                (steps[s].out_dir(tmp_path / store) / MERGED).read_bytes()
                for s in ("concepts", "instructions", "responses")
            ]
        )
    assert files[0] == files[1] == files[2]
    other = plan(seed=1)
    run(other, tmp_path / "d", "concepts", "instructions")
    # Another run seed draws other few-shots / categories, so the instructions differ.
    assert (other["instructions"].out_dir(tmp_path / "d") / MERGED).read_bytes() != files[0][1]


def test_resume_after_a_crash_mid_stage(tmp_path: Path, scripted: Callable[..., None]) -> None:
    seeds = [seed_record(f"good_{i}") for i in range(9)]
    clean = plan(seeds)
    run(clean, tmp_path / "clean", "concepts", "instructions")
    expected = (clean["instructions"].out_dir(tmp_path / "clean") / MERGED).read_bytes()
    clean_calls = len(ScriptedBackend.log)

    steps = plan(seeds)
    run(steps, tmp_path / "crash", "concepts")
    ScriptedBackend.log = []
    scripted(crash_after=2)  # 9 records in batches of 2: dies on the 3rd of 5 batches
    with pytest.raises(RuntimeError, match="backend died"):
        run(steps, tmp_path / "crash", "instructions")
    out = steps["instructions"].out_dir(tmp_path / "crash")
    assert not (out / "_SUCCESS").exists()
    partial = [json.loads(line) for line in (out / "records-00000.jsonl").read_text().splitlines()]
    assert len(partial) == 4

    ScriptedBackend.log = []
    scripted()
    stats = run(steps, tmp_path / "crash", "instructions")["r0/instructions"]
    assert len(ScriptedBackend.log) == 3  # only the unfinished batches are asked again
    assert sum(len(call) for call in ScriptedBackend.log) == 5
    assert (out / MERGED).read_bytes() == expected
    ids = [json.loads(line)["id"] for line in (out / MERGED).read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 9
    assert (stats["in"], stats["out"], stats["requests"]) == (9, 9, 9)  # counters exact despite the crash
    assert clean_calls > 0


def test_instructions_reject_unknown_categories(tmp_path: Path, scripted: Callable[..., None]) -> None:
    steps = plan()
    params = replace(steps["instructions"].params, categories={"function": 1.0, "poem": 1.0})
    bad = Step("r0/instructions", "sca.generate.instructions:run", params, {"concepts": steps["concepts"]})
    with pytest.raises(ValueError, match=r"categories has unknown entries \['poem'\]"):
        run_plan([steps["seeds"], steps["concepts"], bad], tmp_path)


def test_missing_prompt_file_is_named(tmp_path: Path, scripted: Callable[..., None]) -> None:
    steps = plan()
    params = replace(steps["concepts"].params, stage=replace(GEN.concepts, prompt="nope.txt"))
    with pytest.raises(ConfigError, match="prompt file 'nope.txt' not found"):  # where the step is declared
        Step("r0/concepts", "sca.generate.concepts:run", params, {"seeds": steps["seeds"]})


def test_stages_on_the_real_hf_backend_count_every_completion(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A random tiny model writes garbage: whatever comes back must be kept or counted, never lost."""
    llm = llm_params(tiny_model_dir, "hf", 4096, batch_size=2)
    steps = plan([seed_record("good_0"), seed_record("good_1")], llm=llm, n=2, max_tokens=12, num_fewshots=1)
    concepts = [{"id": make_id("c", str(k)), "parent_id": "p", "concepts": ["recursion", "sets"]} for k in range(2)]
    instructions = [
        {"id": make_id("i", str(k)), "parent_id": "p", "text": "Write f.", "category": "function", "difficulty": "easy"}
        for k in range(2)
    ]
    # Each stage gets its own ready-made inputs: garbage from the previous stage would leave it nothing to do.
    given_concepts = Step("given_concepts", "tests.test_stages:emit", {"kind": "Concepts", "records": concepts})
    given_instructions = Step(
        "given_instructions", "tests.test_stages:emit", {"kind": "Instruction", "records": instructions}
    )
    chosen = [
        steps["seeds"],
        given_concepts,
        given_instructions,
        steps["judge"],
        steps["concepts"],
        replace(steps["instructions"], deps={"concepts": given_concepts}),
        replace(steps["responses"], deps={"instructions": given_instructions}),
    ]
    stats = run_plan(chosen, tmp_path)
    for name in ("judged_seeds", "r0/concepts", "r0/instructions", "r0/responses"):
        s = stats[name]
        dropped = sum(v for k, v in s.items() if k.startswith("dropped_"))
        assert s["in"] == s["requests"] == 2, name
        if name == "judged_seeds":
            assert s.get("judged_yes", 0) + dropped == 2
        else:
            assert s["completions"] == 2 * (2 if name == "r0/responses" else 1)
            assert s["out"] + dropped == s["completions"], name
    r = stats["r0/responses"]
    assert r["out"] == 0 and r["dropped_truncated"] >= 1  # 12 random tokens never make a response with tests


def test_sharded_run_merges_to_the_same_records(tmp_path: Path, scripted: Callable[..., None]) -> None:
    seeds = [seed_record(f"good_{i}") for i in range(8)]
    whole = plan(seeds)
    run(whole, tmp_path / "one", "concepts", "instructions")
    sharded = plan(seeds)
    sharded["instructions"] = replace(sharded["instructions"], num_shards=3)
    stats = run(sharded, tmp_path / "three", "concepts", "instructions")["r0/instructions"]
    out = sharded["instructions"].out_dir(tmp_path / "three")
    assert len(list(out.glob("records-*.jsonl"))) == 3
    assert (out / MERGED).read_bytes() == (whole["instructions"].out_dir(tmp_path / "one") / MERGED).read_bytes()
    assert (stats["in"], stats["out"]) == (8, 8)


def test_a_stage_that_fails_mid_batch_closes_its_backend_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error in the stage's own parsing must not leave the engine running while the error is handled."""
    from sca.generate import concepts

    opened: list[ScriptedBackend] = []

    def open_backend(llm: LLMParams, inputs: Mapping[str, Path]) -> ScriptedBackend:
        opened.append(ScriptedBackend())
        return opened[-1]

    def broken_parser(text: str) -> list[str]:
        raise RuntimeError("parser bug")

    steps = plan()
    run(steps, tmp_path, "seeds")
    step, out = steps["concepts"], tmp_path / "concepts"
    out.mkdir()
    ctx = StepContext(step.name, out, {"seeds": steps["seeds"].out_dir(tmp_path)}, step.params)
    monkeypatch.setattr(batches, "open_backend", open_backend)
    monkeypatch.setattr(concepts, "parse_concepts", broken_parser)
    closed_while_handling = None
    try:
        concepts.run(ctx)
    except RuntimeError as error:  # its traceback keeps the stage's frame, and whatever that frame holds, alive
        assert str(error) == "parser bug"
        closed_while_handling = [backend.closed for backend in opened]
    assert closed_while_handling == [True]
