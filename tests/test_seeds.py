"""Seed mining: each filter with a positive and a negative case, the type check, resume after a crash."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sca.benchmarks import BenchmarkFiles
from sca.config import SeedsConfig
from sca.generate import seed_mining, seeds
from sca.generate.seed_mining import mining_params
from sca.generate.seeds import SeedsParams
from sca.io import MERGED, iter_records, read_records
from sca.records import Seed
from sca.runner import run_plan
from sca.step import Step, StepContext
from tests.helpers.params import benchmark_files

FILTERS = seeds.Filters(
    max_lines=12,
    banned_words=frozenset({"todo", "fixme", "bug"}),
    banned_imports=frozenset({"os", "sys", "subprocess"}),
)

GOOD = '''
def area(width: float, height: float) -> float:
    """Area of a rectangle."""
    return width * height
'''


def mine(code: str) -> tuple[list[seeds.Candidate], dict[str, int]]:
    cands, counts = seeds.mine_module("mem.py", textwrap.dedent(code), FILTERS)
    return cands, dict(counts)


def dropped(code: str) -> set[str]:
    return {k for k in mine(code)[1] if k.startswith("dropped_")}


def test_a_good_function_is_kept_whole() -> None:
    cands, counts = mine(GOOD)
    assert counts == {"modules": 1, "found": 1}
    assert cands[0].name == "area" and cands[0].source == "mem.py:2"
    assert cands[0].code == textwrap.dedent(GOOD).lstrip("\n")


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("def f(x):\n    return x\n", "dropped_no_docstring"),
        ("def f():\n    '''Doc.'''\n    return 1\n", "dropped_no_arguments"),
        (
            "def f() -> int:\n    '''Doc.'''\n    return 1\n",
            "dropped_no_arguments",
        ),  # the reference's `():` check misses this
        ("def f(x):\n    '''Doc.'''\n    print(x)\n", "dropped_no_return_value"),
        ("def f(x):\n    '''Doc.'''\n    return None\n", "dropped_no_return_value"),
        ("def f(x):\n    '''Doc.'''\n    def g():\n        return 1\n    g()\n", "dropped_no_return_value"),
        ("def f(x):\n    '''Doc.'''\n" + "    x += 1\n" * 12 + "    return x\n", "dropped_too_long"),
        ("K = 3\ndef f(x):\n    '''Doc.'''\n    return x * K\n", "dropped_needs_module_names"),
        ("from . import util\ndef f(x):\n    '''Doc.'''\n    return util.g(x)\n", "dropped_relative_import"),
        ("def f(x):\n    '''Doc.'''\n    # TODO: faster\n    return x\n", "dropped_banned_word"),
        ("def fix_bug(x):\n    '''Doc.'''\n    return x\n", "dropped_banned_word"),
        ("import os\ndef f(p):\n    '''Doc.'''\n    return os.path.join(p, 'x')\n", "dropped_banned_import"),
        ("def f(p):\n    '''Doc.'''\n    import subprocess\n    return subprocess.run(p)\n", "dropped_banned_import"),
    ],
)
def test_each_filter_drops_its_case(code: str, reason: str) -> None:
    assert dropped(code) == {reason}


@pytest.mark.parametrize(
    "code",
    [
        "def f(x):\n    '''Doc.'''\n    return x\n",
        "def f(*args):\n    '''Doc.'''\n    return args\n",
        'def f(x):\n    """Doc."""\n    if x:\n        return None\n    return x + 1\n',
        "def f(x):\n    '''Doc.'''\n" + "    x += 1\n" * 9 + "    return x\n",  # 12 lines: at the limit
        "K = 3\ndef f(K):\n    '''A parameter may shadow a module name.'''\n    return K\n",
        "def debug_level(x):\n    '''Debugging helper.'''\n    return x\n",
        "def f(debugMode):\n    '''Debug output.'''\n    return debugMode\n",
        "import ossaudiodev\ndef f(x):\n    '''Doc.'''\n    return ossaudiodev.open(x)\n",
        "import os\ndef f(x):\n    '''Doc: the module imports os, but f does not use it.'''\n    return x\n",
    ],
)
def test_near_misses_are_kept(code: str) -> None:
    assert dropped(code) == set(), code


RECURSIVE = "def fact(n):\n    '''Factorial of n.'''\n    return 1 if n < 2 else n * fact(n - 1)\n"


@pytest.mark.parametrize(
    "code",
    [
        RECURSIVE,  # one function per row (the HF source): its own name is the only module name
        "import math\n\n" + RECURSIVE,
        "K = 3\ndef f(x):\n    '''A local may shadow a module name.'''\n    K = x * 2\n    return K\n",
        "items = []\ndef f(xs):\n    '''So may a comprehension variable.'''\n    return [items for items in xs]\n",
        "n = 0\ndef f(xs):\n    '''And a nested function's name.'''\n    def n(y):\n        return y\n"
        "    return [n(x) for x in xs]\n",
        "K = 3\ndef f(x):\n    '''A nested function reads the function's K, not the module's.'''\n"
        "    K = x\n    def g():\n        return K + 1\n    return g()\n",
    ],
)
def test_scope_aware_module_names_keep_recursive_and_shadowing_seeds(code: str) -> None:
    cands, counts = mine(code)
    assert dropped(code) == set(), code
    assert [c.name for c in cands] == ["fact" if "fact" in code else "f"]


@pytest.mark.parametrize(
    "code",
    [
        "K = 3\ndef f(x):\n    '''Doc.'''\n    def g(y):\n        return y * K\n    return g(x)\n",
        "C = 0\ndef f(x):\n    '''Doc.'''\n    global C\n    C += x\n    return C\n",
        "D = 2\ndef f(x, k=D):\n    '''A default is read in the module.'''\n    return x * k\n",
        "def deco(g):\n    return g\n@deco\ndef f(x):\n    '''Doc.'''\n    return x\n",
        "def f(x):\n    '''Doc.'''\n    return [y for y in x if y in SEEN]\nSEEN = set()\n",
        "def f(x):\n    '''Doc.'''\n    return (lambda y: y + W)(x)\nW = 1\n",
    ],
)
def test_names_free_in_the_function_still_need_the_module(code: str) -> None:
    assert "dropped_needs_module_names" in dropped(code), code


def test_a_local_that_shadows_an_import_attaches_no_import() -> None:
    (cand,), _ = mine("import json\ndef f(x):\n    '''Doc.'''\n    json = str(x)\n    return json\n")
    assert cand.code.startswith("def f(x):")


def test_needed_imports_are_attached_and_unused_ones_not() -> None:
    code = """
    import json
    import re as regex
    from collections import OrderedDict, Counter
    from typing import Any

    def count_words(text: str) -> Any:
        '''Word counts of a text.'''
        return Counter(regex.findall(r"\\w+", text))
    """
    (cand,), _ = mine(code)
    header = cand.code.split("\n\n\n")[0].splitlines()
    assert header == ["import re as regex", "from collections import Counter", "from typing import Any"]


def test_methods_and_nested_functions_are_not_seeds() -> None:
    code = """
    class A:
        def m(self, x):
            '''Doc.'''
            return x
    """
    cands, counts = mine(code)
    assert cands == [] and counts.get("found", 0) == 0


def test_unparsable_module_is_counted() -> None:
    assert mine("def f(:\n")[1] == {"modules_unparsable": 1}


def test_typecheck_flags_errors_and_passes_clean_code() -> None:
    errors = seeds.typecheck_batch(
        {"good": textwrap.dedent(GOOD), "bad": "def f(x: int) -> str:\n    '''Doc.'''\n    return x + undefined_name\n"}
    )
    assert errors["good"] == []
    assert any("undefined_name" in e for e in errors["bad"])


def test_typecheck_splits_a_failing_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    real = seeds.typecheck_batch

    def flaky(codes: dict[str, str], timeout_s: float = 1.0) -> dict[str, list[str]]:
        if "poison" in codes:
            raise RuntimeError("basedpyright crashed")
        return real(codes)

    monkeypatch.setattr(seeds, "typecheck_batch", flaky)
    errors, crashed = seeds.typecheck_resilient({"a": GOOD, "b": GOOD, "poison": GOOD})
    assert crashed == ["poison"]
    assert errors == {"a": [], "b": []}


# ------------------------------------------------------------------ the step


def write_tree(root: Path, n: int = 8) -> Path:
    src = root / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "tests").mkdir()
    for i in range(n):
        body = f"""
        import math

        def scaled_{i}(value: float, factor: float = {i}.5) -> float:
            '''Scale value {i} by a factor and take the square root: variant {i} of {"abcdefghij"[i % 10] * (i + 3)}.'''
            return math.sqrt(value * factor + {i * 17})
        """
        (src / "pkg" / f"mod{i}.py").write_text(textwrap.dedent(body))
    (src / "pkg" / "broken.py").write_text("def bad(x: int) -> str:\n    '''Doc.'''\n    return x\n")
    (src / "tests" / "mod_t.py").write_text("def t(x):\n    '''Test dirs are skipped.'''\n    return x\n")
    return src


def ctx_for(out: Path, src: Path, files: BenchmarkFiles | None = None, **over: Any) -> StepContext[SeedsParams]:
    fields = {"source": "dir", "paths": [str(src)], "decontaminate": False, "dedup_threshold": 0.9, "workers": 1,
              "typecheck_batch_size": 3}  # fmt: skip
    cfg = SeedsConfig(**{**fields, **over})
    out.mkdir(parents=True, exist_ok=True)  # the runner creates it
    files = files or benchmark_files(hashed=cfg.decontaminate)
    return StepContext(name="seeds", out=out, inputs={}, params=SeedsParams(cfg, files, 0))


def output(out: Path) -> list[str]:
    return (out / "records-00000.jsonl").read_text().splitlines()


def test_step_funnel_on_a_directory(tmp_path: Path) -> None:
    src = write_tree(tmp_path)
    counters = seeds.run(ctx_for(tmp_path / "out", src))
    recs = [json.loads(x) for x in output(tmp_path / "out")]
    assert counters["found"] == 9
    assert counters["dropped_typecheck"] == 1
    assert counters["kept"] == len(recs) == 8
    assert all(r["code"].startswith("import math\n") for r in recs)
    assert all(r["source"].startswith(str(src / "pkg")) for r in recs)
    assert not any("tests" in r["source"] for r in recs)
    # a finished step returns its counters without redoing anything
    assert seeds.run(ctx_for(tmp_path / "out", src)) == counters


def test_limit_is_a_seeded_sample(tmp_path: Path) -> None:
    src = write_tree(tmp_path)
    a = seeds.run(ctx_for(tmp_path / "a", src, limit=3, typecheck=False))
    seeds.run(ctx_for(tmp_path / "b", src, limit=3, typecheck=False))
    assert a["kept"] == 3 and a["dropped_limit"] == 6
    assert output(tmp_path / "a") == output(tmp_path / "b")


def test_near_duplicates_are_removed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    fn = "def f{i}(items, key):\n    '''Return the items sorted by key, largest first, without the empty ones.'''\n    kept = [x for x in items if x]\n    return sorted(kept, key=key, reverse=True)\n"
    (src / "a.py").write_text(fn.format(i=1) + "\n\n" + fn.format(i=2))
    counters = seeds.run(ctx_for(tmp_path / "out", src, typecheck=False, dedup_threshold=0.5))
    assert counters["dropped_near_duplicate"] == 1 and counters["kept"] == 1


def test_decontamination_drops_a_planted_humaneval_solution(
    tmp_path: Path, humaneval_plus_path: Path, mbpp_plus_path: Path
) -> None:
    src = write_tree(tmp_path, n=2)
    planted = '''
def longest(strings: list) -> str:
    """Out of list of strings, return the longest one. Return the first one in case of multiple
    strings of the same length. Return None in case the input list is empty."""
    if not strings:
        return None

    maxlen = max(len(x) for x in strings)
    for s in strings:
        if len(s) == maxlen:
            return s
'''
    (src / "pkg" / "planted.py").write_text(planted)
    files = benchmark_files(str(humaneval_plus_path), str(mbpp_plus_path))
    ctx = ctx_for(tmp_path / "out", src, files, decontaminate=True, typecheck=False)
    counters = seeds.run(ctx)
    assert counters["dropped_contaminated"] == 1
    assert "longest" not in "".join(output(tmp_path / "out"))


class Killed(BaseException):
    """Stands for the process being killed: not an Exception, so nothing may catch it on the way."""


def test_resume_after_a_crash_in_typecheck(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = write_tree(tmp_path)
    full = seeds.run(ctx_for(tmp_path / "full", src))

    real = seeds.typecheck_resilient
    calls: list[int] = []

    crash = [True]

    def crash_on_second(codes: dict[str, str]) -> tuple[dict[str, list[str]], list[str]]:
        calls.append(len(codes))
        if crash[0] and len(calls) == 2:
            raise Killed("killed half-way")
        return real(codes)

    monkeypatch.setattr(seeds, "typecheck_resilient", crash_on_second)
    with pytest.raises(Killed):
        seeds.run(ctx_for(tmp_path / "crash", src))
    assert not (tmp_path / "crash" / "records-00000.jsonl").read_text()
    crash[0] = False
    calls.clear()
    resumed = seeds.run(ctx_for(tmp_path / "crash", src))
    # 9 functions in batches of 3: batch 1 was committed before the crash, only batches 2-3 are redone
    assert calls == [3, 3]
    assert resumed == full
    assert output(tmp_path / "crash") == output(tmp_path / "full")
    checked = list(iter_records(tmp_path / "crash" / "typecheck" / "records-00000.jsonl", seeds.Checked))
    assert len(checked) == len({c.id for c in checked}) == 9


def test_bad_config_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="generate.seeds.paths"):
        seeds.run(ctx_for(tmp_path / "a", tmp_path, paths=[]))
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        seeds.run(ctx_for(tmp_path / "b", tmp_path, paths=[str(tmp_path / "does-not-exist")]))
    with pytest.raises(ValueError, match="max_lines"):
        seeds.run(ctx_for(tmp_path / "c", tmp_path, max_lines=0))


def the_stack(root: Path, files: int = 3, rows: int = 4) -> Path:
    """A local dataset laid out like bigcode/the-stack-dedup: data/<language>/*.parquet with a content column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "data" / "python").mkdir(parents=True)
    (root / "data" / "javascript").mkdir(parents=True)
    for i in range(files):
        contents = [
            f"def area_{i}_{j}(w, h):\n    '''Area {i}.{j} of a {'xyz'[j % 3] * (i + j + 1)} thing.'''\n"
            f"    return w * h + {i * 10 + j}\n"
            for j in range(rows)
        ]
        contents.append("def nodoc(x):\n    return x\n")
        table = pa.table({"content": contents, "lang": ["Python"] * len(contents)})
        pq.write_table(table, root / "data" / "python" / f"train-{i:05d}-of-{files:05d}.parquet")
    js = pa.table({"content": ["function f(x) { return x; }"] * 2, "lang": ["JavaScript"] * 2})
    pq.write_table(js, root / "data" / "javascript" / "train-00000-of-00001.parquet")
    return root


def mined_step(dataset: Path, shards: int, **over: Any) -> Step:
    cfg = SeedsConfig(
        **{"source": "hf", "hf_dataset": str(dataset), "hf_data_dir": "data/python", "workers": 1, **over}
    )
    return Step("mined_seeds", "sca.generate.seed_mining:run", mining_params(cfg), num_shards=shards)


def test_hf_source_streams_the_data_dir_of_a_dataset(tmp_path: Path) -> None:
    dataset = the_stack(tmp_path / "stack")
    step = mined_step(dataset, 1)
    stats = run_plan([step], tmp_path / "store")["mined_seeds"]
    assert (stats["modules"], stats.get("modules_unparsable", 0), stats["dropped_no_docstring"]) == (15, 0, 3)
    assert stats["candidates"] == stats["records"] == 12
    by_name = {s.name: s for s in read_records(step.out_dir(tmp_path / "store"), Seed)}
    assert by_name["area_1_2"].source == f"{dataset}/data/python:train:1-of-3:2:1"  # data file 1, row 2, line 1
    # Without data_dir every language is read: the JavaScript rows count as unparsable modules.
    every = run_plan([mined_step(dataset, 1, hf_data_dir=None)], tmp_path / "store")["mined_seeds"]
    assert every["modules_unparsable"] == 2 and every["candidates"] == 12
    with pytest.raises(KeyError, match="hf_column='code' is not a column"):
        run_plan([mined_step(dataset, 1, hf_column="code")], tmp_path / "store")


def test_hf_mining_is_sharded_by_data_file_and_resumes_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = the_stack(tmp_path / "stack", files=5)
    one = mined_step(dataset, 1)
    run_plan([one], tmp_path / "one")
    expected = (one.out_dir(tmp_path / "one") / MERGED).read_text()

    real = seed_mining._mine_hf
    calls: list[int] = []

    def killed_in_the_second_file(unit: seed_mining.HFUnit, filters: seeds.Filters) -> seed_mining.Work:
        calls.append(unit.index)
        if len(calls) == 2:
            raise Killed("killed half-way through a data file")
        return real(unit, filters)

    monkeypatch.setattr(seed_mining, "_mine_hf", killed_in_the_second_file)
    two = mined_step(dataset, 2)  # shard 0: data files 0, 2, 4; shard 1: 1, 3
    with pytest.raises(Killed):
        run_plan([two], tmp_path / "two")
    out = two.out_dir(tmp_path / "two")
    commits = [json.loads(line) for line in (out / "progress-00000.jsonl").read_text().splitlines()]
    assert [c["ids"] for c in commits] == [[f"{dataset}/data/python:train:0-of-5"]], "one data file per commit"

    calls.clear()
    monkeypatch.setattr(seed_mining, "_mine_hf", lambda unit, filters: calls.append(unit.index) or real(unit, filters))
    stats = run_plan([two], tmp_path / "two")["mined_seeds"]
    assert calls == [2, 4, 1, 3], "the finished data file is not read again; the cut one is redone whole"
    assert (out / MERGED).read_text() == expected, "nothing lost, nothing duplicated"
    assert (stats["modules"], stats["candidates"]) == (25, 20)


def test_sharded_mining_feeds_the_global_step_like_one_process(tmp_path: Path) -> None:
    src = write_tree(tmp_path)
    (src / "pkg" / "zcopy.py").write_text((src / "pkg" / "mod0.py").read_text())  # an exact duplicate
    inline_ctx = ctx_for(tmp_path / "inline", src, typecheck=False)
    inline = seeds.run(inline_ctx)
    mined = Step("mined_seeds", "sca.generate.seed_mining:run", mining_params(inline_ctx.params.seeds), num_shards=3)
    final = Step("seeds", "sca.generate.seeds:run", inline_ctx.params, {"mined": mined})
    stats = run_plan([mined, final], tmp_path / "store")
    assert stats["seeds"]["dropped_duplicate"] == inline["dropped_duplicate"] == 1
    assert (stats["seeds"]["found"], stats["seeds"]["kept"]) == (inline["found"], inline["kept"]) == (10, 9)
    assert (final.out_dir(tmp_path / "store") / MERGED).read_text().splitlines() == output(tmp_path / "inline")
    kept = read_records(final.out_dir(tmp_path / "store"), Seed)
    assert not any("zcopy" in s.source for s in kept), "a duplicate keeps its smallest source, whatever the shards"


@pytest.mark.slow
def test_stdlib_default_mines_hundreds_of_clean_seeds(
    tmp_path: Path, humaneval_plus_path: Path, mbpp_plus_path: Path
) -> None:
    files = benchmark_files(str(humaneval_plus_path), str(mbpp_plus_path))
    ctx = StepContext(name="seeds", out=tmp_path, inputs={}, params=SeedsParams(SeedsConfig(workers=2), files, 0))
    counters = seeds.run(ctx)
    assert counters["kept"] > 200
    assert not (tmp_path / MERGED).exists()  # merging is the runner's job
