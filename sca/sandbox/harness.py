"""Filter mode in the child: run the program as ``__main__``, then its uncalled tests, and report.

Semantics (docs/sandbox.md has the verdict table): the program runs as a real ``__main__`` module, so
``unittest.main()`` finds its TestCase classes; ``unittest.main()`` runs them and returns instead of
exiting; top-level ``def test*`` functions nobody calls and TestCase classes nobody ran are run after
the program, as pytest and unittest would; every executed check (assert statement, ``assert*`` call,
``if ...: raise AssertionError``) and every test (unittest, collected, doctest.testmod) is counted, so a run that checked nothing is told
apart from a pass. The completion record is written by the audit hook (``guard``), never from here.
"""

from __future__ import annotations

import contextlib
import dis
import sys
import types
import unittest
from typing import Any

from sca.sandbox import guard, program

_STATE: dict[str, Any] = {"checks": 0, "tests": 0, "failures": 0, "errors": 0, "error_type": "", "ran": set()}


def _count_check() -> None:
    _STATE["checks"] += 1


def _error(kind: str, err: Any) -> None:
    _STATE[kind] += 1
    if not _STATE["error_type"] and kind == "errors":
        _STATE["error_type"] = f"{getattr(err[0], '__name__', 'Exception')}"


def setup() -> None:
    """Once per warm worker, before any fork: track every unittest result, make ``unittest.main`` return."""
    base = unittest.TestResult
    start, failure, error, sub, unexpected = (
        base.startTest, base.addFailure, base.addError, base.addSubTest, base.addUnexpectedSuccess
    )  # fmt: skip

    def start_test(self: Any, test: Any) -> None:
        _STATE["tests"] += 1
        _STATE["ran"].add(type(test))
        start(self, test)

    def add_failure(self: Any, test: Any, err: Any) -> None:
        _error("failures", err)
        failure(self, test, err)

    def add_error(self: Any, test: Any, err: Any) -> None:
        _error("errors", err)
        error(self, test, err)

    def add_sub_test(self: Any, test: Any, subtest: Any, err: Any) -> None:
        if err is not None:
            _error("failures" if issubclass(err[0], test.failureException) else "errors", err)
        sub(self, test, subtest, err)

    def add_unexpected_success(self: Any, test: Any) -> None:
        _STATE["failures"] += 1
        unexpected(self, test)

    base.startTest, base.addFailure, base.addError = start_test, add_failure, add_error  # type: ignore[method-assign]
    base.addSubTest, base.addUnexpectedSuccess = add_sub_test, add_unexpected_success  # type: ignore[method-assign]
    unittest.main = _unittest_main  # type: ignore[assignment,misc]
    # Tracing is denied in filter mode (guard.py), so no tracer is ever active and clearing one is a
    # no-op: doctest (and others) restore "no tracer" on their way out and must not fail on it.
    for name in ("settrace", "setprofile"):
        setattr(sys, name, _allow_clearing(getattr(sys, name)))


def _allow_clearing(real: Any) -> Any:
    def set_hook(fn: Any) -> None:
        if fn is not None:
            real(fn)

    return set_hook


def _count_doctest() -> None:
    """``doctest.testmod()`` reports instead of raising: take its counts from the runner it leaves behind."""
    doctest = sys.modules.get("doctest")
    runner = getattr(doctest, "master", None)
    for failures, tries in getattr(runner, "_name2ft", {}).values():
        _STATE["tests"] += int(tries)
        _STATE["failures"] += int(failures)


def _unittest_main(*args: Any, **kwargs: Any) -> unittest.TestProgram:
    """``unittest.main()`` runs the module's tests and returns (as with ``exit=False``): the harness, not
    the exit status, judges the result."""
    kwargs["exit"] = False
    return unittest.TestProgram(*args, **kwargs)


def _ends_program(e: SystemExit, final: tuple[int, int]) -> bool:
    """SystemExit(0/None/False) raised directly by the program's last statement ends it normally."""
    if e.code not in (None, 0, False):
        return False
    tb, frames = e.__traceback__, []
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<candidate>":
            frames.append((tb.tb_frame.f_code.co_name, tb.tb_lineno))
        tb = tb.tb_next
    return len(frames) == 1 and frames[0][0] == "<module>" and final[0] <= frames[0][1] <= final[1]


def _run_uncalled(module: types.ModuleType, prepared: program.Prepared) -> None:
    """What pytest/unittest would collect but the program never ran."""
    ns = module.__dict__
    for name in prepared.uncalled_tests:
        fn = ns.get(name)
        code = getattr(fn, "__code__", None)
        if not isinstance(fn, types.FunctionType) or code is None or code.co_filename != "<candidate>":
            continue
        if code.co_argcount - len(fn.__defaults__ or ()) > 0 or code.co_kwonlyargcount:
            continue  # needs fixtures or parameters: not callable on its own
        _STATE["tests"] += 1
        fn()
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    for value in list(ns.values()):
        if (
            isinstance(value, type)
            and issubclass(value, unittest.TestCase)
            and value.__module__ == "__main__"
            and value not in _STATE["ran"]
        ):
            suite.addTests(loader.loadTestsFromTestCase(value))
    if suite.countTestCases():
        unittest.TextTestRunner(stream=sys.stderr, verbosity=0).run(suite)


def _text(value: Any) -> str:
    try:
        return f"{value}"[:500]
    except BaseException:
        return "<unprintable>"


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()


def _run(code: str) -> None:
    audit = sys.audit  # a local: rebinding sys.audit or this module's globals does not reach it
    status, etype, msg = "exception", "", ""
    audit("sca.begin")
    try:
        prepared = program.prepare(code)
        if prepared.skipped_stdin_guard:
            sys.stderr.write("sca: skipped an `if __name__ == '__main__':` block that reads stdin\n")
        module = types.ModuleType("__main__")
        module.__dict__[program.CHECK] = _count_check
        sys.modules["__main__"] = module
        compiled = compile(prepared.tree, "<candidate>", "exec")
        try:
            exec(compiled, module.__dict__)
        except SystemExit as e:
            if not _ends_program(e, prepared.final_lines):
                raise
        _run_uncalled(module, prepared)
        _count_doctest()
        s = _STATE
        summary = (int(s["checks"]), int(s["tests"]), int(s["failures"]), int(s["errors"]), _text(s["error_type"]))
        _flush()
        audit("sca.ok", *summary)
    except SystemExit as e:
        status, etype, msg = "sys_exit", "SystemExit", _text(repr(e.code))[:200]
    except BaseException as e:
        status, etype, msg = "exception", _text(type(e).__name__), _text(e)
    _flush()
    audit("sca.end", status, etype, msg)


def _line_of(code: types.CodeType, marker: str) -> int:
    lines = [i.positions.lineno for i in dis.get_instructions(code) if i.argval == marker and i.positions]
    if len(lines) != 1 or lines[0] is None:
        raise RuntimeError(f"harness: {marker!r} must be raised on exactly one line")
    return lines[0]


OK_LINE, END_LINE = _line_of(_run.__code__, "sca.ok"), _line_of(_run.__code__, "sca.end")


def run_filter(code: str, key_path: str, result_fd: int) -> None:
    """Run ``code``; the hook writes the record and exits. Returning means the record was refused."""
    sys.argv = ["<candidate>"]
    guard.install(key_path, result_fd, _run.__code__, OK_LINE, END_LINE)
    _run(code)
