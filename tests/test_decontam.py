"""Decontamination against the real HumanEval+ and MBPP+ files, loaded through evalplus."""

from __future__ import annotations

from pathlib import Path

import pytest

from sca.curate.decontam import BenchmarkText, Decontaminator, load_benchmark_texts


@pytest.fixture(scope="module")
def texts(humaneval_plus_path: Path, mbpp_plus_path: Path) -> list[BenchmarkText]:
    return load_benchmark_texts(["humaneval", "mbpp"], str(humaneval_plus_path), str(mbpp_plus_path))


@pytest.fixture(scope="module")
def decon(texts: list[BenchmarkText]) -> Decontaminator:
    return Decontaminator(texts, ngram=10)


def by_id(texts: list[BenchmarkText], task_id: str, kind: str) -> str:
    return next(t.text for t in texts if t.task_id == task_id and t.kind == kind)


def test_loads_every_task_through_evalplus(humaneval_plus_path: Path, mbpp_plus_path: Path) -> None:
    import evalplus.data.humaneval as he
    import evalplus.data.mbpp as mb

    before = (he.HUMANEVAL_OVERRIDE_PATH, mb.MBPP_OVERRIDE_PATH)
    texts = load_benchmark_texts(["humaneval", "mbpp"], str(humaneval_plus_path), str(mbpp_plus_path))
    ids = {t.task_id for t in texts}
    assert len([i for i in ids if i.startswith("HumanEval/")]) == 164
    assert len([i for i in ids if i.startswith("Mbpp/")]) == 378
    assert {t.kind for t in texts} == {"prompt", "solution", "assert"}
    assert before == (he.HUMANEVAL_OVERRIDE_PATH, mb.MBPP_OVERRIDE_PATH)  # the override does not leak


def test_planted_humaneval_solution_is_caught_even_reindented(
    texts: list[BenchmarkText], decon: Decontaminator
) -> None:
    sol = by_id(texts, "HumanEval/12", "solution")
    planted = "Here is my answer:\n```python\ndef longest(strings):\n" + sol.replace("    ", "  ") + "```\n"
    assert decon.check(planted) == "exact:HumanEval/12"


def test_planted_mbpp_prompt_is_caught(texts: list[BenchmarkText], decon: Decontaminator) -> None:
    prompt = by_id(texts, "Mbpp/2", "prompt")
    assert decon.check(f"Task: {prompt.upper()} Use sets.") == "exact:Mbpp/2"


def test_paraphrase_caught_by_ngram_not_by_exact(texts: list[BenchmarkText], decon: Decontaminator) -> None:
    doc = by_id(texts, "HumanEval/12", "prompt")
    assert doc.startswith("Out of list of strings, return the longest one.")
    para = "Given a list of strings, return the longest one. Return the first one in case of multiple strings of equal size."
    assert decon.check_exact(para) is None
    assert decon.check(para) == "ngram10:HumanEval/12"
    assert Decontaminator(texts, ngram=0).check(para) is None  # n = 0 turns n-gram matching off


def test_clean_code_and_trivial_solutions_pass(decon: Decontaminator) -> None:
    assert decon.check("def add(x, y):\n    return x + y\n") is None  # HumanEval/53's whole solution: trivial
    assert decon.check("def is_pal(text):\n    return text == text[::-1]\n") is None
    assert decon.check("Write a class for a stack with push, pop and a max operation in O(1).") is None


def test_boilerplate_ngrams_shared_by_many_tasks_do_not_flag() -> None:
    common = "for i in range len arr for j in range i 1 len arr"
    items = [BenchmarkText(f"T/{i}", "solution", f"{common} unique{i}") for i in range(6)]
    d = Decontaminator(items, ngram=10, min_exact_words=100)
    assert d.check(f"x = 1\n{common}\n") is None
    assert d.check(f"{common} unique3") == "ngram10:T/3"


def test_bad_input_names_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown decontamination benchmarks"):
        load_benchmark_texts(["gsm8k"])
    with pytest.raises(FileNotFoundError, match="paths.humaneval"):
        load_benchmark_texts(["humaneval"], str(tmp_path / "missing.jsonl.gz"))
    with pytest.raises(ValueError, match="ngram"):
        Decontaminator([], ngram=-1)
