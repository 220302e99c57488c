"""Step ``sft_data``: from executed responses to a clean SFT dataset (docs/method.md: curation; the reference's defects fixed).

In order, every removed response counted under ``dropped_<reason>`` and written to ``removed.jsonl``:

1. passing only (``verdict == "passed"``); with ``require_strong_tests``, only those whose tests failed
   against a stub solution (``Execution.strong_tests``, beyond the paper);
2. format: the solution parses; the tests parse, assert something and really invoke code at top level
   (not only defs/imports); the response shows a fenced code block and does not contain the tests; no
   placeholder text (``TODO``, ``your code here``, ``NotImplemented``...) as whole words;
3. instructions longer than ``max_instruction_chars`` or ``max_instruction_words`` (whitespace-separated
   words; the method's cap is 200) dropped;
4. one random passing response per instruction (``random.Random(f"{seed}:{instruction_id}")``);
5. exact dedup of instructions and of responses (whitespace removed);
6. MinHash near-dedup over the instruction, the response and the solution's code skeleton;
7. optional assert augmentation (the paper's C.1: up to 5 asserts for half the examples; off by default);
8. decontamination (exact + n-gram) of the final text: instruction + response.

The walk order of 5-6 ("first occurrence wins") is a seeded shuffle: records sorted by
``make_id(seed, response_id)``, so the result does not depend on input order or sharding.
The reference's function-name diversity rule (drop different tasks whose solutions define the same
names) is left out: it removes distinct tasks, not duplicates.

The step is global (dedup), fast, and writes its output in one commit at the end; a crash before that
simply recomputes.
"""

from __future__ import annotations

import ast
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sca.generate.dedup import code_skeleton, find_near_duplicates
from sca.generate.prompting import PLACEHOLDER_RE
from sca.io import atomic_write_text
from sca.progress import console, print_counters, table
from sca.records import Concepts, Execution, Instruction, Response, Seed, SFTExample, make_id
from sca.step import StepContext

REMOVED = "removed.jsonl"
FUNNEL = ("seeds", "concepts", "instructions", "responses", "passed", "selected", "dedup", "decontam")
_PLACEHOLDER = PLACEHOLDER_RE  # the same rule generation applies: `return NotImplemented` is legitimate
_FENCE = re.compile(r"```[\w+-]*\n.*?```", re.DOTALL)
_AUGMENT_BLOCKERS = re.compile(r"\b(assert|for example|test)", re.IGNORECASE)
_INERT = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom, ast.Pass)


@dataclass(frozen=True, slots=True)
class Candidate:
    response: Response
    execution: Execution
    instruction: Instruction
    concepts: Concepts
    seed: Seed


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def format_problem(r: Response) -> str | None:
    """Why a response is malformed, or None."""
    try:
        ast.parse(r.solution)
    except SyntaxError:
        return "format_solution_unparsable"
    if not r.solution.strip():
        return "format_no_solution"
    try:
        tests = ast.parse(r.tests)
    except SyntaxError:
        return "format_tests_unparsable"
    asserts = any(
        isinstance(n, ast.Assert)
        or (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute | ast.Name)
            and _callee(n.func).startswith("assert")
        )
        for n in ast.walk(tests)
    )
    if not asserts:
        return "format_tests_no_assert"
    if all(isinstance(n, _INERT) or _is_docstring(n) for n in tests.body):
        return "format_tests_not_invoked"
    if not _FENCE.search(r.text):
        return "format_no_code_block"
    if r.tests.strip() and r.tests.strip() in r.text:
        return "format_tests_in_response"
    if _PLACEHOLDER.search(r.text) or _PLACEHOLDER.search(r.solution):
        return "format_placeholder"
    return None


def _callee(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def augment(instruction: str, tests: str, rng: random.Random, p: float, max_asserts: int) -> str:
    """With probability ``p``, append up to ``max_asserts`` of the tests' top-level asserts (paper C.1)."""
    if p <= 0 or rng.random() >= p or _AUGMENT_BLOCKERS.search(instruction):
        return instruction
    tree = ast.parse(tests)
    asserts = [ast.get_source_segment(tests, n) or "" for n in tree.body if isinstance(n, ast.Assert)]
    asserts = [a for a in asserts if a and "\n" not in a]
    if not asserts:
        return instruction
    k = rng.randint(1, min(max_asserts, len(asserts)))
    picked = sorted(rng.sample(range(len(asserts)), k))
    noun = "assertion" if k == 1 else "assertions"
    block = "\n".join(asserts[i] for i in picked)
    return f"{instruction}\n\nYour code should pass the following {noun}:\n```python\n{block}\n```"


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


def _squash(text: str) -> str:
    return "".join(text.split())


def run(ctx: StepContext) -> dict[str, float]:
    if ctx.num_shards != 1:
        raise ValueError("the curation step is global (dedup) and runs as one shard; set num_shards=1 for it")
    cfg, seed = ctx.params["curate"], int(ctx.params["seed"])
    journal = ctx.journal()
    if journal.done:
        journal.close()
        return dict(journal.counters)
    if cfg["max_instruction_chars"] < 1:
        raise ValueError(f"curate.max_instruction_chars={cfg['max_instruction_chars']} must be >= 1")

    seeds = _index(ctx.read("seeds", Seed), "seeds")
    concepts = _index(ctx.read("concepts", Concepts), "concepts")
    instructions = _index(ctx.read("instructions", Instruction), "instructions")
    responses = ctx.read("responses", Response)
    executions: dict[str, Execution] = {}
    for e in ctx.read("executions", Execution):
        if e.parent_id in executions:
            raise ValueError(f"response {e.parent_id} has two executions; the executions step output is corrupt")
        executions[e.parent_id] = e

    counts: Counter[str] = Counter()
    funnel = {
        "seeds": len(seeds),
        "concepts": len(concepts),
        "instructions": len(instructions),
        "responses": len(responses),
    }
    removed: list[dict[str, Any]] = []

    def drop(c: Candidate | Response, reason: str, detail: str = "", texts: bool = True) -> None:
        r = c.response if isinstance(c, Candidate) else c
        counts[f"dropped_{reason}"] += 1
        entry: dict[str, Any] = {"response_id": r.id, "instruction_id": r.parent_id, "reason": reason, "detail": detail}
        if texts and isinstance(c, Candidate):
            entry["instruction"] = c.instruction.text
            entry["response"] = r.text
        removed.append(entry)

    # 1-3: per response
    by_instruction: dict[str, list[Candidate]] = defaultdict(list)
    passed = 0
    for r in sorted(responses, key=lambda r: r.id):
        if r.id not in executions:
            raise ValueError(f"response {r.id} has no execution in the 'executions' input; re-run the executions step")
        e = executions[r.id]
        inst = _parent(instructions, r.parent_id, "instructions", f"response {r.id}")
        conc = _parent(concepts, inst.parent_id, "concepts", f"instruction {inst.id}")
        sd = _parent(seeds, conc.parent_id, "seeds", f"concepts {conc.id}")
        if e.verdict != "passed":
            drop(r, "not_passed", e.verdict, texts=False)
            continue
        passed += 1
        c = Candidate(response=r, execution=e, instruction=inst, concepts=conc, seed=sd)
        problem = format_problem(r)
        if cfg["require_strong_tests"] and e.strong_tests is not True:
            # tests that also pass against a stub solution (every function returns None) check nothing
            drop(c, "weak_tests" if e.strong_tests is False else "tests_not_stub_checked")
        elif problem:
            drop(c, problem)
        elif len(inst.text) > cfg["max_instruction_chars"]:
            drop(c, "instruction_too_long", f"{len(inst.text)} chars")
        elif 0 < cfg["max_instruction_words"] < len(inst.text.split()):
            drop(c, "instruction_too_many_words", f"{len(inst.text.split())} words")
        else:
            by_instruction[inst.id].append(c)
    funnel["passed"] = passed

    # 4: one random passing response per instruction
    chosen: list[Candidate] = []
    for inst_id in sorted(by_instruction):
        group = by_instruction[inst_id]
        pick = random.Random(f"{seed}:{inst_id}").randrange(len(group))
        chosen.append(group[pick])
        for i, c in enumerate(group):
            if i != pick:
                drop(c, "not_selected", group[pick].response.id, texts=False)

    # 5: exact dedup, walking a seeded shuffle
    chosen.sort(key=lambda c: make_id(str(seed), c.response.id))
    seen_inst: dict[str, str] = {}
    seen_resp: dict[str, str] = {}
    selected: list[Candidate] = []
    for c in chosen:
        ki, kr = _squash(c.instruction.text), _squash(c.response.text)
        if ki in seen_inst:
            drop(c, "duplicate_instruction", seen_inst[ki])
        elif kr in seen_resp:
            drop(c, "duplicate_response", seen_resp[kr])
        else:
            seen_inst[ki], seen_resp[kr] = c.response.id, c.response.id
            selected.append(c)
    funnel["selected"] = len(selected)

    # 6: near dedup, one field after the other
    fields = {
        "instruction": lambda c: c.instruction.text,
        "response": lambda c: c.response.text,
        "skeleton": lambda c: code_skeleton(c.response.solution),
    }
    for field_name, get in fields.items():
        kept, dups = find_near_duplicates(
            [get(c) for c in selected], cfg["dedup_threshold"], cfg["dedup_num_perm"], cfg["dedup_ngram"], seed
        )
        for i, j in sorted(dups.items()):
            drop(selected[i], f"near_duplicate_{field_name}", selected[j].response.id)
        selected = [selected[i] for i in kept]
    funnel["dedup"] = len(selected)

    # 7-8: build the final examples, then decontaminate what will be trained on
    decon = None
    if cfg["decontaminate"]:
        from sca.generate.decontam import load_decontaminator

        decon = load_decontaminator(cfg["decontaminate"], ctx.runtime, ngram=int(cfg["decontam_ngram"]))
    examples: list[SFTExample] = []
    for c in selected:
        rng = random.Random(f"{seed}:{c.response.id}:augment")
        text = augment(c.instruction.text, c.response.tests, rng, cfg["augment_asserts_p"], cfg["augment_max_asserts"])
        counts["augmented"] += text != c.instruction.text
        hit = decon.check(text + "\n\n" + c.response.text) if decon else None
        if hit:
            drop(c, "contaminated", hit)
            continue
        examples.append(
            SFTExample(
                id=make_id(c.response.id, text),
                parent_id=c.response.id,
                prompt=[{"role": "user", "content": text}],
                completion=[{"role": "assistant", "content": c.response.text}],
                lineage={
                    "seed": c.seed.id,
                    "concepts": c.concepts.id,
                    "instruction": c.instruction.id,
                    "response": c.response.id,
                    "execution": c.execution.id,
                },
            )
        )
    funnel["decontam"] = len(examples)

    removed.sort(key=lambda e: (e["reason"], e["response_id"]))
    atomic_write_text(
        ctx.out / REMOVED, "".join(json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n" for e in removed)
    )
    counts.update({f"funnel_{k}": funnel[k] for k in FUNNEL})
    examples.sort(key=lambda x: x.id)
    journal.commit([r.id for r in responses] + ["_final"], examples, counts)
    journal.close()
    print_funnel(funnel)
    print_counters("curation", journal.counters)
    return dict(journal.counters)


def print_funnel(funnel: Mapping[str, int]) -> None:
    rows = []
    prev = None
    for stage in FUNNEL:
        n = funnel[stage]
        rows.append((stage, n, f"{100 * n / prev:.1f}%" if prev else "-"))
        prev = n
    console.print(table("curation funnel", ["stage", "count", "of previous"], rows))
