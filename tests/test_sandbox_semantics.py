"""Filter-mode semantics: exactly the verdict table of docs/sandbox.md, the stub check, and a pool whose
interpreter lives under /tmp."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

import pytest

from sca.config import Config, ConfigError, CurateConfig, SandboxConfig
from sca.io import SUCCESS, iter_records
from sca.records import Execution, Response, make_id, to_json
from sca.sandbox import Sandbox, execute_programs, probe
from sca.sandbox import step as execute_step
from sca.sandbox.program import stub_solution
from sca.step import StepContext

ROOT = Path(__file__).resolve().parent.parent
CFG = SandboxConfig(timeout_s=5.0, rerun_timeouts=0, workers=2)
ADD = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"
CHECK = "assert add(2, 3) == 5\n"
CASE = (
    "import unittest\n\nclass T(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n"
)
GUARD = "if __name__ == '__main__':\n"
DOCTEST = 'def add(a, b):\n    """\n    >>> add(2, 3)\n    5\n    """\n    return a + b\n\n\n'
READER = "def add(a, b):\n    return a + b\n\nif __name__ == '__main__':\n    a, b = map(int, input().split())\n    print(add(a, b))\n"

# name -> (program, verdict, error_type). The same rows, in the same order, are the table in docs/sandbox.md.
TABLE: dict[str, tuple[str, str, str]] = {
    "asserts_pass": (ADD + CHECK, "passed", ""),
    "assert_fails": (WRONG + CHECK, "failed", "AssertionError"),
    "exception": (ADD + "add(1)\n", "error", "TypeError"),
    "if_raise_check_passes": (ADD + "if add(2, 3) != 5:\n    raise AssertionError('bad')\n", "passed", ""),
    "no_check_executed": (ADD + "print(add(2, 3))\n", "no_tests", "NoChecksRun"),
    "assert_in_uncalled_helper": (ADD + "def check():\n    assert add(2, 3) == 5\n", "no_tests", "NoChecksRun"),
    "unittest_main_guarded": (ADD + CASE + GUARD + "    unittest.main()\n", "passed", ""),
    "unittest_main_unguarded": (ADD + CASE + "unittest.main()\n", "passed", ""),
    "unittest_main_exit_false": (ADD + CASE + "unittest.main(argv=['x'], exit=False)\n", "passed", ""),
    "unittest_main_failure": (WRONG + CASE + GUARD + "    unittest.main()\n", "failed", "AssertionError"),
    "unittest_main_error": (
        ADD + CASE + "    def test_boom(self):\n        {}['k']\n" + "unittest.main()\n",
        "error",
        "KeyError",
    ),
    "unittest_main_zero_tests": (ADD + "import unittest\nunittest.main()\n", "no_tests", "NoChecksRun"),
    "unittest_runner_failure": (
        WRONG + CASE + "unittest.TextTestRunner().run(unittest.defaultTestLoader.loadTestsFromTestCase(T))\n",
        "failed",
        "AssertionError",
    ),
    "unittest_sys_exit_in_test": (
        ADD + CASE + "    def test_exit(self):\n        raise SystemExit(0)\n" + "unittest.main()\n",
        "error",
        "SystemExit",
    ),
    "doctest_testmod": (DOCTEST + GUARD + "    import doctest\n    doctest.testmod()\n", "passed", ""),
    "doctest_testmod_failure": (
        DOCTEST.replace("a + b", "a - b") + "import doctest\ndoctest.testmod()\n",
        "failed",
        "AssertionError",
    ),
    "uncalled_testcase": (ADD + CASE, "passed", ""),
    "uncalled_testcase_wrong": (WRONG + CASE, "failed", "AssertionError"),
    "uncalled_test_function": (ADD + "def test_add():\n    " + CHECK, "passed", ""),
    "uncalled_test_function_wrong": (WRONG + "def test_add():\n    " + CHECK, "failed", "AssertionError"),
    "uncalled_test_function_raises": (ADD + "def test_add():\n    add(1)\n", "error", "TypeError"),
    "test_function_needing_arguments": (
        ADD + "def test_add(x):\n    assert add(x, 0) == x\n",
        "no_tests",
        "NoChecksRun",
    ),
    "called_test_function": (ADD + "def test_add():\n    " + CHECK + "test_add()\n", "passed", ""),
    "sys_exit_0_before_tests": (WRONG + "import sys\nsys.exit(0)\n" + CHECK, "error", "SystemExit"),
    "sys_exit_0_inside_tests": (ADD + CHECK + "import sys\nsys.exit(0)\n" + CHECK, "error", "SystemExit"),
    "sys_exit_0_inside_test_function": (
        ADD + "import sys\ndef test_all():\n    " + CHECK + "    sys.exit(0)\ntest_all()\n",
        "error",
        "SystemExit",
    ),
    "sys_exit_0_after_tests": (ADD + CHECK + "import sys\nsys.exit(0)\n", "passed", ""),
    "sys_exit_0_after_tests_in_main_guard": (
        ADD + "import sys\n" + GUARD + "    " + CHECK + "    sys.exit(0)\n",
        "passed",
        "",
    ),
    "exit_builtin_after_tests": (ADD + CHECK + "exit()\n", "passed", ""),
    "sys_exit_0_after_no_checks": (ADD + "import sys\nsys.exit(0)\n", "no_tests", "NoChecksRun"),
    "sys_exit_1_after_tests": (ADD + CHECK + "import sys\nsys.exit(1)\n", "error", "SystemExit"),
    "os_exit_0_after_tests": (ADD + CHECK + "import os\nos._exit(0)\n", "error", "EarlyExit"),
    "stdin_read_at_top_level": (ADD + "a = input()\n" + CHECK, "error", "EOFError"),
    "stdin_main_guard_left_out": (READER + CHECK, "passed", ""),
    "stdin_main_guard_left_out_wrong": (READER.replace("a + b", "a - b") + CHECK, "failed", "AssertionError"),
    "stdin_fed_by_tests": (
        "def read_sum():\n    a, b = map(int, input().split())\n    return a + b\n"
        "import io, sys\nsys.stdin = io.StringIO('2 3\\n')\nassert read_sum() == 5\n",
        "passed",
        "",
    ),
}


@pytest.fixture(scope="module")
def table() -> dict[str, Any]:
    return dict(zip(TABLE, execute_programs([p for p, _v, _e in TABLE.values()], CFG), strict=True))


@pytest.mark.parametrize("name", list(TABLE))
def test_verdict_table(table: dict[str, Any], name: str) -> None:
    _program, verdict, error_type = TABLE[name]
    out = table[name]
    assert (out.verdict, out.error_type) == (verdict, error_type), (name, out)


def test_the_docs_table_lists_exactly_these_cases() -> None:
    doc = (ROOT / "docs" / "sandbox.md").read_text()
    rows = re.findall(r"^\| `([a-z0-9_]+)` \| .*\| `([a-z_]+)` \| `?([A-Za-z]*)`? \|$", doc, re.MULTILINE)
    assert [(n, v, e) for n, v, e in rows] == [(n, v, e) for n, (_p, v, e) in TABLE.items()]


def test_a_skipped_stdin_guard_is_said_in_the_detail(table: dict[str, Any]) -> None:
    assert "reads stdin" in table["stdin_main_guard_left_out"].detail


def test_unittest_failures_name_the_test(table: dict[str, Any]) -> None:
    assert "test_add" in table["unittest_main_failure"].detail and "1 of 1" in table["unittest_main_failure"].detail
    assert "1 of 1" in table["doctest_testmod_failure"].detail


# --- the stub check ----------------------------------------------------------------------------------------
STUBS = {  # name -> (solution, tests, strong)
    "compares_results": (ADD, CHECK, True),
    "only_checks_callable": (ADD, "assert callable(add)\n", False),
    "swallows_everything": (ADD, "try:\n    add(2, 3)\nexcept Exception:\n    pass\nassert True\n", False),
    "method_results": (
        "class Counter:\n    def __init__(self):\n        self.n = 0\n    def bump(self):\n        self.n += 1\n        return self.n\n",
        "c = Counter()\nassert c.bump() == 1\n",
        True,
    ),
    "in_place_mutation": (
        "def fill(xs):\n    xs.append(1)\n",
        "xs = []\nfill(xs)\nassert xs == [1]\n",
        True,
    ),
    "unittest_case": (ADD, CASE, True),
}


def _response(name: str, solution: str, tests: str) -> Response:
    return Response(id=make_id(name), parent_id="i", sample=0, text="", solution=solution, tests=tests)


def test_stub_solution_keeps_names_and_returns_none() -> None:
    stub = stub_solution(
        "import math\nX = 1\n@staticmethod\ndef f(a):\n    return math.sqrt(a)\nclass C:\n    def m(self):\n        return 2\n"
    )
    assert stub is not None and "X = 1" in stub and "import math" in stub and "sqrt" not in stub
    ns: dict[str, Any] = {}
    exec(stub.replace("@staticmethod\n", ""), ns)
    assert ns["f"](4) is None and ns["C"]().m() is None
    assert stub_solution("def broken(:\n") is None


def test_stub_check_tells_weak_tests_from_strong_ones() -> None:
    responses = [_response(n, s, t) for n, (s, t, _strong) in STUBS.items()]
    with Sandbox(CFG) as sb:
        strong = execute_step.check_strength(sb, responses)
    assert {n: strong[r.id] for n, r in zip(STUBS, responses, strict=True)} == {n: v[2] for n, v in STUBS.items()}


def test_step_records_strong_tests_and_counts_the_weak_share(tmp_path: Path) -> None:
    src = tmp_path / "responses"
    src.mkdir()
    rows = [
        _response("strong", ADD, CHECK),
        _response("weak", ADD, "assert callable(add)\n"),
        _response("bad", WRONG, CHECK),
    ]
    (src / "records.jsonl").write_text("".join(to_json(r) + "\n" for r in rows))
    (src / SUCCESS).write_text("")

    def run(stub_check: bool, name: str) -> tuple[dict[str, Any], dict[str, Execution]]:
        out = tmp_path / name
        out.mkdir()
        sandbox = SandboxConfig(timeout_s=5.0, rerun_timeouts=0, stub_check=stub_check, workers=2, batch_size=8)
        ctx = StepContext("r0/executions", out, {"responses": src}, execute_step.ExecutionsParams(sandbox))
        counters = execute_step.run(ctx)
        recs = [r for p in sorted(out.glob("records-*.jsonl")) for r in iter_records(p, Execution)]
        return counters, {r.parent_id: r for r in recs}

    counters, recs = run(True, "on")
    assert {rid: r.strong_tests for rid, r in recs.items()} == {rows[0].id: True, rows[1].id: False, rows[2].id: None}
    assert counters["stub_checked"] == 2 and counters["stub_weak_tests"] == 1
    counters, recs = run(False, "off")
    assert all(r.strong_tests is None for r in recs.values()) and "stub_checked" not in counters


def test_requiring_strong_tests_without_the_stub_check_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="sandbox.stub_check"):
        Config(curate=CurateConfig(require_strong_tests=True))
    assert Config(curate=CurateConfig(require_strong_tests=True), sandbox=SandboxConfig(stub_check=True))


# --- an interpreter under /tmp ---------------------------------------------------------------------------
@pytest.mark.skipif(probe().tier == "C", reason="only tier A mounts a private scratch tmpfs")
def test_pool_runs_from_an_interpreter_living_under_tmp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clusters stage environments to /tmp: the pool's scratch space must not hide them (tier A)."""
    home = Path(tempfile.mkdtemp(prefix="sca-venv-", dir="/tmp"))
    try:
        venv = home / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
        site = next((venv / "lib").glob("python3*/site-packages"))
        (site / "sca_parent_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # omegaconf etc.
        (site / "sca_tmp_probe.py").write_text("VALUE = 7\n")  # lives under /tmp, like a staged package
        monkeypatch.setattr(sys, "executable", str(venv / "bin" / "python"))
        with Sandbox(SandboxConfig(timeout_s=5.0, rerun_timeouts=0, workers=1)) as sb:
            prefix = sb.run_filter(["import sys\nassert sys.prefix.startswith('/tmp/'), sys.prefix\n"])[0]
            out = sb.run_filter(["import sca_tmp_probe\nassert sca_tmp_probe.VALUE == 7\n"])[0]
        assert prefix.verdict == "passed", prefix
        assert out.verdict == "passed", out
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_the_pool_leaves_no_scratch_directory_behind() -> None:
    before = set(Path(tempfile.gettempdir()).glob("sca-scratch-*"))
    with Sandbox(SandboxConfig(workers=1)) as sb:
        assert sb.run_filter([ADD + CHECK])[0].verdict == "passed"
    assert set(Path(tempfile.gettempdir()).glob("sca-scratch-*")) == before
