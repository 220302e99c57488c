"""Eval: code extraction, prompts, data loading, EvalPlus scoring and the step end to end (fake backend)."""

from __future__ import annotations

import dataclasses
import gzip
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from sca.benchmarks import (
    RELEASE_HASHES,
    Benchmark,
    BenchmarkFiles,
    data_label,
    dataset_hash,
    load_benchmark,
    release_name,
    resolve_path,
)
from sca.config import EvalConfig
from sca.eval import evalplus as step_mod
from sca.eval.evalplus import EvalParams
from sca.eval.extract import code_blocks, extract_code
from sca.eval.prompts import build_request, instruction, mbpp_parts
from sca.eval.score import evaluate
from sca.eval.score import main as score_main
from sca.eval.scoring import FAIL, PASS, Grading, Scorer, summarize
from sca.io import read_records
from sca.llm.contract import Completion, LLMParams, Request
from sca.records import EvalSample
from sca.runner import execute
from sca.step import Step
from tests.conftest import BENCHMARKS, HUMANEVAL_PLUS, REFERENCE
from tests.helpers.params import llm_params

HE_PROMPT = '''from typing import List


def below_zero(operations: List[int]) -> bool:
    """ Return True if the running balance ever drops below zero.
    >>> below_zero([1, -2])
    True
    """
'''
HE_HELPER_PROMPT = '''def is_palindrome(string: str) -> bool:
    """ Test if given string is a palindrome """
    return string == string[::-1]


def make_palindrome(string: str) -> str:
    """ Find the shortest palindrome that begins with a supplied string. """
'''
BODY = "    balance = 0\n    for op in operations:\n        balance += op\n        if balance < 0:\n            return True\n    return False\n"
FULL = "def below_zero(operations):\n" + BODY


# ---- code extraction ----------------------------------------------------------------------------------


def test_fenced_answer_keeps_the_prompt_imports() -> None:
    text = f"Here you go:\n```python\n{FULL}```\nIt scans once."
    code = extract_code(text, HE_PROMPT, "below_zero")
    assert code.startswith("from typing import List\n") and FULL.strip() in code
    assert "Here you go" not in code and "scans" not in code
    compile(code, "x", "exec")


def test_the_block_that_defines_the_entry_point_wins_and_demo_code_is_dropped() -> None:
    text = (
        "```python\nprint(below_zero([1]))\n```\n"
        f"```python\n{FULL}\nassert below_zero([1, -2])\nprint(below_zero([5]))\n```\n"
        "```bash\npython x.py\n```"
    )
    code = extract_code(text, HE_PROMPT, "below_zero")
    assert "def below_zero" in code and "print(" not in code and "assert" not in code and "python x.py" not in code


def test_no_fence_and_a_chatty_tail() -> None:
    code = extract_code(f"{FULL}\nThis function returns whether the balance dips.", HE_PROMPT, "below_zero")
    assert "def below_zero" in code and "dips" not in code
    compile(code, "x", "exec")


def test_truncated_output_keeps_what_parses() -> None:
    helper = "def helper(x):\n    return x + 1\n\n"
    truncated = "```python\n" + helper + FULL.replace("return False\n", "") + "    for k in range(len(opera"
    code = extract_code(truncated, HE_PROMPT, "below_zero")
    compile(code, "x", "exec")
    assert "def below_zero" in code and "opera\n" not in code


def test_a_bare_body_is_completed_with_the_prompt() -> None:
    code = extract_code("```python\n" + BODY, HE_PROMPT, "below_zero")
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    assert namespace["below_zero"]([1, -2]) is True and namespace["below_zero"]([3]) is False


def test_helpers_defined_in_the_prompt_are_kept() -> None:
    answer = "```python\ndef make_palindrome(string):\n    i = 0\n    while not is_palindrome(string[i:]):\n        i += 1\n    return string + string[:i][::-1]\n```"
    code = extract_code(answer, HE_HELPER_PROMPT, "make_palindrome")
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    assert namespace["make_palindrome"]("cat") == "catac"


def test_code_blocks_reads_unclosed_and_skips_other_languages() -> None:
    blocks = code_blocks("```\na = 1\n```\n```json\n{}\n```\n```py\nb = 2")
    assert [b.strip() for b in blocks] == ["a = 1", "b = 2"]


# ---- prompts -------------------------------------------------------------------------------------------


MBPP_PROMPT = '"""\nWrite a function to find the shared elements from the given two lists\nassert set(f((3, 4), (4, 5))) == set((4,))\n"""\n'


def test_mbpp_instruction_has_the_sentence_and_first_assert() -> None:
    assert mbpp_parts(MBPP_PROMPT) == (
        "Write a function to find the shared elements from the given two lists",
        "assert set(f((3, 4), (4, 5))) == set((4,))",
    )
    text = instruction("mbpp", {"prompt": MBPP_PROMPT})
    assert "given two lists. " in text and "```python\nassert set(f(" in text


def test_requests_for_chat_and_base_models() -> None:
    problem = {"prompt": HE_PROMPT, "task_id": "HumanEval/3", "entry_point": "below_zero"}
    sampling = {"n": 1, "temperature": 0.0, "top_p": 1.0, "max_tokens": 100}
    chat = build_request("humaneval", problem, True, 7, sampling)
    assert isinstance(chat.prompt, list) and HE_PROMPT.strip() in chat.prompt[0]["content"]
    assert chat.prefix == "```python\n" and chat.stop == ("\n```",) and chat.seed == 7
    body_only = build_request("humaneval", problem, True, 7, sampling, prefix_prompt=True)
    assert body_only.prefix == "```python\n" + HE_PROMPT
    base = build_request("humaneval", problem, False, 7, sampling)
    assert base.prompt == HE_PROMPT and "\ndef " in base.stop and base.prefix == ""


# ---- data ----------------------------------------------------------------------------------------------


def test_plain_and_gzipped_files_are_the_same_benchmark(tmp_path: Path, mbpp_plus_path: Path) -> None:
    plain = tmp_path / "mbpp.jsonl"
    plain.write_bytes(gzip.decompress(mbpp_plus_path.read_bytes()))
    a, b = load_benchmark("mbpp", mbpp_plus_path), load_benchmark("mbpp", plain)
    assert len(a.problems) == 378 and a.digests == b.digests
    # evalplus's deserialization ran: Mbpp/2's inputs are tuples, not JSON lists.
    assert isinstance(a.problems["Mbpp/2"]["base_input"][0][0], tuple)


def test_select_by_limit_and_task_ids(humaneval_plus_path: Path) -> None:
    bench = load_benchmark("humaneval", humaneval_plus_path)
    assert list(bench.select(limit=3).problems) == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    picked = bench.select(task_ids=["HumanEval/7", "HumanEval/2", "Mbpp/2"])
    assert list(picked.problems) == ["HumanEval/2", "HumanEval/7"] and set(picked.digests) == set(picked.problems)


def test_bad_data_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        resolve_path("humaneval", str(tmp_path / "nope.jsonl"), tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_id": "HumanEval/0", "prompt": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl: record 1 .*missing \['entry_point'"):
        load_benchmark("humaneval", bad)
    garbage = tmp_path / "garbage.jsonl.gz"
    garbage.write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="garbage.jsonl.gz: cannot read"):
        load_benchmark("humaneval", garbage)
    with pytest.raises(ValueError, match="not one of"):
        resolve_path("apps", "", tmp_path)


# ---- scoring -------------------------------------------------------------------------------------------


def canonical(bench: Benchmark) -> list[tuple[str, str]]:
    return [(t, p["prompt"] + p["canonical_solution"]) for t, p in bench.problems.items()]


def test_canonical_solutions_pass_and_wrong_ones_fail(tmp_path: Path, humaneval_plus_path: Path) -> None:
    # HumanEval/32 (find_zero) fails every program under evalplus 0.3.1's own grader; ours passes it.
    bench = load_benchmark("humaneval", humaneval_plus_path).select(
        task_ids=["HumanEval/0", "HumanEval/2", "HumanEval/32"]
    )
    good = canonical(bench)
    wrong = [(t, f"def {bench.problems[t]['entry_point']}(*args):\n    return None\n") for t in bench.problems]
    crashing = [("HumanEval/0", "this is not python")]
    looping = [("HumanEval/2", "def truncate_number(x):\n    while True:\n        pass\n")]
    with Scorer(bench, tmp_path, Grading(), workers=2) as scorer:
        verdicts = scorer.score(good + wrong + crashing + looping)
    assert [(v.base, v.plus) for v in verdicts[:3]] == [(PASS, PASS)] * 3
    assert all(v.base == FAIL and not v.passed_plus for v in verdicts[3:])
    # Ground truth is cached per task under our cache dir, never under ~/.cache/evalplus.
    assert len(list((tmp_path / "eval" / "groundtruth").rglob("*.pkl"))) == 3


def test_pass_at_k_follows_evalplus() -> None:
    from sca.eval.scoring import Verdict

    p, f = Verdict(PASS, PASS), Verdict(PASS, FAIL)
    scores = summarize({"a": [p] * 10, "b": [f] * 5 + [Verdict(FAIL, FAIL)] * 5})
    assert scores["pass@1_base"] == pytest.approx(0.75) and scores["pass@1_plus"] == pytest.approx(0.5)
    assert scores["pass@10_base"] == pytest.approx(1.0) and scores["n_tasks"] == 2 and "pass@100_base" not in scores


@pytest.mark.parametrize("dataset", ["humaneval", "mbpp"])
def test_canonical_subset_scores_one(
    dataset: str, tmp_path: Path, humaneval_plus_path: Path, mbpp_plus_path: Path
) -> None:
    path = humaneval_plus_path if dataset == "humaneval" else mbpp_plus_path
    bench = load_benchmark(dataset, path).select(limit=15)
    with Scorer(bench, tmp_path, Grading(), workers=2) as scorer:
        verdicts = scorer.score(canonical(bench))
    scores = summarize({t: [v] for (t, _), v in zip(canonical(bench), verdicts, strict=True)})
    assert scores == {"n_tasks": 15, "pass@1_base": 1.0, "pass@1_plus": 1.0}


# ---- the standalone scorer -----------------------------------------------------------------------------


def test_score_cli_writes_fresh_results(tmp_path: Path, humaneval_plus_path: Path, capsys: Any) -> None:
    bench = load_benchmark("humaneval", humaneval_plus_path).select(limit=4)
    samples = tmp_path / "samples.jsonl"
    rows = [{"task_id": t, "completion": p["canonical_solution"]} for t, p in list(bench.problems.items())[:3]]
    rows.append({"task_id": "HumanEval/3", "solution": "def below_zero(ops):\n    return False\n"})
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "samples_eval_results.json"
    out.write_text('{"stale": true}')  # an old result must be replaced, never reused
    args = ["--dataset", "humaneval", "--samples", str(samples), "--data", str(humaneval_plus_path)]
    with pytest.raises(ValueError, match="no sample for 160 of 164 tasks"):
        score_main([*args, "--cache", str(tmp_path)])
    score_main([*args, "--cache", str(tmp_path), "--partial"])
    results = json.loads(out.read_text())
    assert "stale" not in results and results["scores"]["pass@1_base"] == pytest.approx(0.75)
    assert (
        results["eval"]["HumanEval/3"][0]["base_status"] == FAIL
        and results["eval"]["HumanEval/3"][0]["base_fail_tests"]
    )
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["pass@1_plus"] == pytest.approx(0.75)


# Published StarCoder2-15B-Instruct verdicts on MBPP+ v0.1.0 (evalplus@25e195e, numpy 1.x): five float tasks
# failed on results one ulp from the canonical ones; two float tasks passed because they were bit-exact.
ULP_FAILURES = ["Mbpp/14", "Mbpp/276", "Mbpp/312", "Mbpp/574", "Mbpp/746"]
EXACT_FLOATS = ["Mbpp/82", "Mbpp/85"]


def test_exact_floats_reproduce_verdicts_published_before_evalplus_0_3(tmp_path: Path) -> None:
    name = "evalplus-starcoder2-15b-instruct-v0.1-mbpp"
    wanted = set(ULP_FAILURES + EXACT_FLOATS)
    rows = [r for r in map(json.loads, (REFERENCE / f"{name}.jsonl").open()) if r["task_id"] in wanted]
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    published = json.loads((REFERENCE / f"{name}_eval_results.json").read_text())
    data = BENCHMARKS / "MbppPlus-v0.1.0.jsonl.gz"
    args = ["--dataset", "mbpp", "--samples", str(samples), "--data", str(data), "--cache", str(tmp_path), "--partial"]

    score_main([*args, "--out", str(tmp_path / "tolerant.json")])
    tolerant = json.loads((tmp_path / "tolerant.json").read_text())
    assert all(r[0]["base_status"] == r[0]["plus_status"] == PASS for r in tolerant["eval"].values())

    score_main([*args, "--out", str(tmp_path / "exact.json"), "--exact-floats"])
    exact = json.loads((tmp_path / "exact.json").read_text())
    assert exact["hash"] == published["hash"], "the data is the file the published run names"
    for task in wanted:
        ours, theirs = exact["eval"][task][0], published["eval"][task][0]
        assert (ours["base_status"], ours["plus_status"]) == (theirs["base_status"], theirs["plus_status"]), task
        # The same first failing input as the published run, not just the same verdict.
        assert ours["plus_fail_tests"] == theirs["plus_fail_tests"], task
    assert exact["scores"]["pass@1_plus"] == pytest.approx(2 / 7)


def test_evalplus_hash_names_the_data_whatever_its_packing(tmp_path: Path) -> None:
    for dataset in ("humaneval", "mbpp"):
        published = json.loads(
            (REFERENCE / f"evalplus-starcoder2-15b-instruct-v0.1-{dataset}_eval_results.json").read_text()
        )
        packed = BENCHMARKS / f"{release_name(dataset, 'v0.1.9' if dataset == 'humaneval' else 'v0.1.0')}.jsonl.gz"
        plain = tmp_path / f"{dataset}.jsonl"
        plain.write_bytes(gzip.decompress(packed.read_bytes()))
        assert dataset_hash(dataset, packed) == dataset_hash(dataset, plain) == published["hash"]
    # Every release we know: the shared file has the hash the plan assumes before downloading it.
    for (dataset, version), md5 in RELEASE_HASHES.items():
        assert dataset_hash(dataset, BENCHMARKS / f"{release_name(dataset, version)}.jsonl.gz") == md5
        assert dataset_hash(dataset, "", version) == md5
    assert dataset_hash("humaneval", "") == dataset_hash("humaneval", HUMANEVAL_PLUS), "default: evalplus 0.3.1's"
    assert dataset_hash("mbpp", "", "v9.9") == "release:MbppPlus-v9.9"
    assert data_label("mbpp", RELEASE_HASHES[("mbpp", "v0.1.0")]) == "v0.1.0"
    assert data_label("mbpp", "0123456789abcdef") == "0123456789ab", "an unknown file: its hash"
    with pytest.raises(ValueError, match="cannot read the mbpp problems file"):
        (tmp_path / "bad.jsonl.gz").write_text("not gzip")
        dataset_hash("mbpp", tmp_path / "bad.jsonl.gz")


def test_score_rejects_samples_of_another_dataset(tmp_path: Path, humaneval_plus_path: Path) -> None:
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"task_id": "Mbpp/2", "solution": "x = 1"}) + "\n")
    with pytest.raises(ValueError, match="Mbpp/2.*wrong --dataset"):
        evaluate("humaneval", samples, str(humaneval_plus_path), cache=tmp_path)


# ---- the step, end to end, with a scripted backend ------------------------------------------------------


class FakeBackend:
    """Answers each benchmark request with the canonical solution (or a wrong one), in the chat or base format."""

    calls: list[int] = []

    def __init__(self, problems: Mapping[str, Mapping[str, Any]], right: bool, crash_after: int = -1) -> None:
        self.by_text = {}
        for dataset, p in problems.values():
            self.by_text[instruction(dataset, p)] = (dataset, p)
            self.by_text[p["prompt"]] = (dataset, p)
        self.right, self.crash_after = right, crash_after

    def answer(self, dataset: str, p: Mapping[str, Any], chat: bool) -> str:
        if not self.right:
            return f"def {p['entry_point']}(*args):\n    return 'wrong'\n"
        # Chat: complete code after the "```python" prefix; base: continue the raw prompt.
        if dataset == "humaneval" and chat:
            return p["prompt"] + p["canonical_solution"]
        return p["canonical_solution"]

    def generate(self, requests: Sequence[Request]) -> list[list[Completion]]:
        if len(FakeBackend.calls) == self.crash_after:
            raise RuntimeError("backend died")
        FakeBackend.calls.append(len(requests))
        out = []
        for r in requests:
            chat = not isinstance(r.prompt, str)
            key = r.prompt[0]["content"] if isinstance(r.prompt, list) else r.prompt
            dataset, p = self.by_text[key]
            text = self.answer(dataset, p, chat)
            out.append([Completion(text, "stop", 10, 10) for _ in range(r.n)])
        return out

    def close(self) -> None:
        pass


@pytest.fixture
def small_benchmarks(humaneval_plus_path: Path, mbpp_plus_path: Path) -> dict[str, Any]:
    he = load_benchmark("humaneval", humaneval_plus_path).select(limit=4)
    mb = load_benchmark("mbpp", mbpp_plus_path).select(limit=4)
    problems = {t: ("humaneval", p) for t, p in he.problems.items()} | {t: ("mbpp", p) for t, p in mb.problems.items()}
    return {"problems": problems, "he": str(humaneval_plus_path), "mbpp": str(mbpp_plus_path)}


def benchmark_files(data: Mapping[str, Any], cache: Path) -> BenchmarkFiles:
    paths = {"humaneval": data["he"], "mbpp": data["mbpp"]}
    hashes = {b: dataset_hash(b, path) for b, path in paths.items()}
    return BenchmarkFiles(hashes, paths, {"humaneval": "", "mbpp": ""}, str(cache))


def eval_step(data: Mapping[str, Any], cache: Path, chat: bool = True, n: int = 1, batch_size: int = 3) -> Step:
    cfg = EvalConfig(limit=4, n_samples=n, temperature=0.0 if n == 1 else 0.8, max_tokens=64, workers=2)
    llm = llm_params("fake", "hf", chat=chat, batch_size=batch_size)
    return Step(
        name="r0/eval", fn="sca.eval.evalplus:run", params=EvalParams(cfg, benchmark_files(data, cache), llm, 0)
    )


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, small_benchmarks: dict[str, Any]) -> Callable[..., None]:
    FakeBackend.calls = []

    def use(right: bool = True, crash_after: int = -1) -> None:
        def open_backend(llm: LLMParams, inputs: Mapping[str, Path]) -> FakeBackend:
            assert llm.model.name_or_path == "fake" and llm.backend.batch_size == 3
            return FakeBackend(small_benchmarks["problems"], right, crash_after)

        monkeypatch.setattr(step_mod, "open_backend", open_backend)

    use()
    return use


@pytest.mark.parametrize("chat", [True, False])
def test_step_scores_canonical_answers_one(
    tmp_path: Path, fake: Callable[..., None], small_benchmarks: dict[str, Any], chat: bool
) -> None:
    step = eval_step(small_benchmarks, tmp_path / "cache", chat=chat)
    stats = execute(step, tmp_path / "store", {})
    out = step.out_dir(tmp_path / "store")
    scores = json.loads((out / "scores.json").read_text())
    assert scores["humaneval"] == {"n_tasks": 4, "pass@1_base": 1.0, "pass@1_plus": 1.0}
    assert scores["mbpp"] == {"n_tasks": 4, "pass@1_base": 1.0, "pass@1_plus": 1.0}
    assert stats["humaneval/pass@1_plus"] == 1.0 and stats["humaneval/samples"] == 4 and stats["records"] == 8
    records = read_records(out, EvalSample)
    assert {r.base_verdict for r in records} == {PASS} and all(r.solution and r.prompt for r in records)


def test_step_scores_wrong_answers_zero(
    tmp_path: Path, fake: Callable[..., None], small_benchmarks: dict[str, Any]
) -> None:
    fake(right=False)
    step = eval_step(small_benchmarks, tmp_path / "cache", n=2)
    stats = execute(step, tmp_path / "store", {})
    assert stats["humaneval/pass@1_base"] == 0.0 and stats["mbpp/pass@1_plus"] == 0.0
    assert stats["humaneval/samples"] == 8 and stats["records"] == 16  # n = 2 samples per task


def test_step_resumes_after_crashes_in_generation_and_scoring(
    tmp_path: Path, fake: Callable[..., None], small_benchmarks: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    step = eval_step(small_benchmarks, tmp_path / "cache")
    fake(crash_after=1)  # the second batch of 3 tasks dies
    with pytest.raises(RuntimeError, match="backend died"):
        execute(step, tmp_path / "store", {})
    assert FakeBackend.calls == [3]
    fake()
    monkeypatch.setattr(step_mod, "SCORE_BATCH", 2)
    real_score = Scorer.score
    scored: list[int] = []

    def flaky(self: Scorer, items: Sequence[tuple[str, str]], base_only: bool = False, desc: str = "") -> Any:
        if len(scored) == 2:
            raise RuntimeError("scoring died")
        scored.append(len(items))
        return real_score(self, items, base_only, desc)

    monkeypatch.setattr(Scorer, "score", flaky)
    with pytest.raises(RuntimeError, match="scoring died"):
        execute(step, tmp_path / "store", {})
    assert FakeBackend.calls == [3, 3, 2]  # only the 5 tasks not generated before
    monkeypatch.setattr(Scorer, "score", real_score)
    stats = execute(step, tmp_path / "store", {})
    assert FakeBackend.calls == [3, 3, 2]  # nothing regenerated
    records = read_records(step.out_dir(tmp_path / "store"), EvalSample)
    assert len(records) == 8 == len({r.id for r in records})
    assert stats["humaneval/samples"] + stats["mbpp/samples"] == 8 and stats["mbpp/pass@1_plus"] == 1.0


def test_step_rejects_unknown_task_ids(
    tmp_path: Path, fake: Callable[..., None], small_benchmarks: dict[str, Any]
) -> None:
    step = eval_step(small_benchmarks, tmp_path / "cache")
    cfg = dataclasses.replace(step.params.eval, task_ids=["HumanEval/0", "HumanEval/999"])
    bad = Step(name=step.name, fn=step.fn, params=dataclasses.replace(step.params, eval=cfg))
    with pytest.raises(ValueError, match=r"eval.task_ids .*HumanEval/999"):
        execute(bad, tmp_path / "store", {})


def test_copying_data_keeps_ground_truth_cache(tmp_path: Path, humaneval_plus_path: Path) -> None:
    """The ground-truth cache keys on task content, so a renamed copy of the file reuses it."""
    copy = tmp_path / "renamed.jsonl.gz"
    shutil.copy(humaneval_plus_path, copy)
    a = load_benchmark("humaneval", humaneval_plus_path).select(limit=2)
    b = load_benchmark("humaneval", copy).select(limit=2)
    assert a.digests == b.digests


def test_offline_without_data_names_the_file_and_how_to_point_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import urllib.request

    from sca.benchmarks import resolve_path

    def offline(*_: object, **__: object) -> None:
        raise OSError("Network is unreachable")

    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    with pytest.raises(
        FileNotFoundError, match=r"HumanEvalPlus-v0\.1\.10\.jsonl\.gz.*SCA_DATA=<folder>.*paths\.humaneval"
    ):
        resolve_path("humaneval", "", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"MbppPlus-v0\.1\.0\.jsonl\.gz.*releases/download/v0\.1\.0/MbppPlus"):
        resolve_path("mbpp", "", tmp_path, "v0.1.0")


def test_step_refuses_data_that_changed_after_planning(tmp_path: Path, humaneval_plus_path: Path) -> None:
    cfg = EvalConfig(benchmarks=["humaneval"], limit=2)
    paths, versions = {"humaneval": str(humaneval_plus_path), "mbpp": ""}, {"humaneval": "", "mbpp": ""}
    planned = BenchmarkFiles(
        {"humaneval": dataset_hash("humaneval", humaneval_plus_path)}, paths, versions, str(tmp_path)
    )
    assert list(step_mod.load_benchmarks(cfg, planned)["humaneval"].problems) == ["HumanEval/0", "HumanEval/1"]
    with pytest.raises(ValueError, match="planned for humaneval data with hash 0+; the file changed"):
        step_mod.load_benchmarks(cfg, BenchmarkFiles({"humaneval": "0" * 32}, paths, versions, str(tmp_path)))
