"""The few-shot examples: complete, well-formed, pinned by the templates, and their code really passes."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from sca.config import SandboxConfig, SeedsConfig
from sca.curate.decontam import Decontaminator, load_benchmark_texts
from sca.generate import fewshot, seed_filters, seeds
from sca.generate.fewshot import (
    CATEGORIES,
    DIFFICULTIES,
    EXAMPLES_FILE,
    PROMPTS_DIR,
    load_examples,
    load_judge_examples,
    pin_templates,
    split_docstring,
)
from sca.generate.prompting import fill, load_template, parse_concepts, parse_instruction, parse_response
from sca.sandbox import execute_programs

TEMPLATES = ("concepts.txt", "instructions.txt", "responses.txt", "judge.txt")


def test_examples_follow_the_methods_mix_of_categories_and_difficulties() -> None:
    examples = load_examples()
    assert Counter(e.category for e in examples) == {"function": 15, "class": 2, "program": 4}
    difficulties = Counter(e.difficulty for e in examples)
    assert set(difficulties) == set(DIFFICULTIES) and difficulties["hard"] <= 3  # the method: 9 / 11 / 1
    assert {e.category for e in examples} == set(CATEGORIES)
    judge = load_judge_examples()
    assert {j.answer for j in judge} == {"Yes", "No"}


def _seed_filters() -> seeds.Filters:
    return seed_filters.filters_of(SeedsConfig())  # the filters a default run mines with


def test_every_example_seed_is_one_the_seed_filter_keeps() -> None:
    """A seed the pipeline itself would drop (no return value, module names, banned words...) teaches the
    model about code it never sees: each example seed must come through mining unchanged."""
    for example in load_examples():
        found, counts = seeds.mine_module(f"example:{example.name}", example.seed, _seed_filters())
        dropped = {k: v for k, v in counts.items() if k.startswith("dropped_")}
        assert len(found) == 1 and not dropped, f"{example.name}: the seed filter drops its seed: {dropped}"
        assert found[0].code.strip() == example.seed.strip(), f"{example.name}: mining changes the seed"


def test_the_seed_filter_check_rejects_a_seed_without_a_return_value() -> None:
    # The check above is not vacuous: the old stack example's seed, which returns nothing, fails it.
    push = 'def push(stack, item):\n    """Push item."""\n    stack.append(item)\n'
    found, counts = seeds.mine_module("example:push", push, _seed_filters())
    assert found == [] and counts["dropped_no_return_value"] == 1


def test_no_example_seed_is_benchmark_code(humaneval_plus_path: Path, mbpp_plus_path: Path) -> None:
    texts = load_benchmark_texts(["humaneval", "mbpp"], str(humaneval_plus_path), str(mbpp_plus_path))
    decon = Decontaminator(texts, ngram=SeedsConfig().decontam_ngram)
    assert {e.name: hit for e in load_examples() if (hit := decon.check(e.seed))} == {}


def test_every_example_seed_passes_the_type_check() -> None:
    codes = {e.name: e.seed for e in load_examples()}
    errors = seeds.typecheck_batch(codes)
    assert {name: errs for name, errs in errors.items() if errs} == {}


def test_each_example_renders_and_parses_back_through_every_stage() -> None:
    concepts, instructions, responses = (load_template(t) for t in TEMPLATES[:3])
    for example in load_examples():
        fields = example.fields()
        assert split_docstring(example.seed) is not None, f"{example.name}: the seed needs a docstring"
        assert parse_concepts(fill(concepts.output, fields, "")) == list(example.concepts)
        assert parse_instruction(fill(instructions.output, fields, "")) == example.instruction.strip()
        parsed = parse_response(fill(responses.output, fields, ""))
        assert "```python" in parsed.text and "</response>" not in parsed.text
        assert "assert" in parsed.tests and "assert" not in parsed.solution, example.name


def _programs() -> tuple[list[str], list[str]]:
    names, programs = [], []
    responses = load_template("responses.txt")
    for example in load_examples():
        parsed = parse_response(fill(responses.output, example.fields(), ""))
        names.append(example.name)
        programs.append(parsed.solution + "\n\n" + parsed.tests)
    return names, programs


def test_every_example_solution_passes_its_tests_in_the_sandbox() -> None:
    names, programs = _programs()
    # Negative controls: the same harness must fail a broken solution and a failing test.
    programs.append(programs[0].replace("273.15", "273.0"))
    programs.append(programs[1] + "\nassert False, 'planted failure'\n")
    outcomes = execute_programs(programs, SandboxConfig(timeout_s=20.0))
    verdicts = {name: (o.verdict, o.detail) for name, o in zip(names, outcomes, strict=False)}
    assert all(v == "passed" for v, _ in verdicts.values()), {n: v for n, v in verdicts.items() if v[0] != "passed"}
    assert [o.verdict for o in outcomes[-2:]] == ["failed", "failed"]


def test_judge_examples_split_into_code_and_docstring() -> None:
    for example in load_judge_examples():
        fields = example.fields()
        assert fields["docstring"] and '"""' not in fields["code"]
        compile(fields["code"], example.name, "exec")  # still valid Python without its docstring


def test_split_docstring_keeps_a_docstring_only_function_valid() -> None:
    code, doc = split_docstring('def f(x):\n    """Only a docstring."""\n') or ("", "")
    assert doc == "Only a docstring." and "..." in code
    compile(code, "f", "exec")
    assert split_docstring("def g():\n    return 1\n") is None
    assert split_docstring("def broken(:\n") is None


def test_templates_pin_the_current_examples() -> None:
    for name in TEMPLATES:
        assert load_template(name).examples == EXAMPLES_FILE


def test_changed_examples_fail_until_re_pinned(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    shutil.copytree(PROMPTS_DIR, prompts)
    examples = prompts / "examples.yaml"
    examples.write_text(examples.read_text() + "\n# an edit\n")
    with pytest.raises(ValueError, match="fewshot --pin"):
        load_template(str(prompts / "concepts.txt"))
    before = (prompts / "concepts.txt").read_bytes()
    assert {p.name for p in pin_templates(prompts)} == {*TEMPLATES, "responses_smollm2.txt"}  # smollm2 has its own
    assert (prompts / "concepts.txt").read_bytes() != before  # the template's hash (the step key) moves too
    assert load_template(str(prompts / "concepts.txt")).examples == examples


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("category: function", "category: script"), "category 'script'"),
        (("difficulty: easy", "difficulty: trivial"), "difficulty 'trivial'"),
        (("    instruction: |", "    instructions: |"), "missing field 'instruction'"),
    ],
)
def test_bad_examples_file_names_the_example_and_field(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    bad = tmp_path / "examples.yaml"
    bad.write_text(EXAMPLES_FILE.read_text().replace(*edit, 1))
    with pytest.raises(ValueError, match=message) as err:
        load_examples(bad)
    assert str(bad) in str(err.value)


def test_sample_refuses_more_shots_than_examples() -> None:
    import random

    with pytest.raises(ValueError, match="num_fewshots=30"):
        fewshot.sample(load_examples(), 30, random.Random(0))
