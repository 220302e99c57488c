"""The step runner: content-addressed keys, cache hits, resume after a crash or a kill, lock, dry run, shards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sca.io import Journal, read_records
from sca.records import Seed
from sca.runner import StepLocked, execute, plan_status, run_plan, step_lock
from sca.step import Step
from tests.helpers.steps import NumbersParams, numbers_params

ROOT = Path(__file__).resolve().parent.parent


def numbers_step(tmp_path: Path, n: int = 20, **runtime: Any) -> Step[NumbersParams]:
    return Step("numbers", "tests.helpers.steps:numbers", numbers_params(n, tmp_path / "calls", **runtime))


def calls(tmp_path: Path) -> int:
    path = tmp_path / "calls"
    return len(path.read_text()) if path.exists() else 0


def test_key_depends_on_semantics_not_runtime(tmp_path: Path) -> None:
    a = numbers_step(tmp_path, n=20)
    assert a.key == numbers_step(tmp_path, n=20).key
    assert a.key != numbers_step(tmp_path, n=21).key
    assert a.key == numbers_step(tmp_path, n=20, sleep=1.0, workers=8).key
    down_a = Step("upper", "tests.helpers.steps:upper", {}, {"numbers": a})
    down_b = Step("upper", "tests.helpers.steps:upper", {}, {"numbers": numbers_step(tmp_path, n=21)})
    assert down_a.key != down_b.key
    assert Step("s", "m:f", {"a": 1, "b": 2}).key == Step("s", "m:f", {"b": 2, "a": 1}).key
    assert Step("s", "m:f", {}, version=1).key != Step("s", "m:f", {}, version=2).key


def test_finished_step_is_a_cache_hit(tmp_path: Path) -> None:
    store = tmp_path / "store"
    steps = [numbers_step(tmp_path)]
    first = run_plan(steps, store)
    assert calls(tmp_path) == 1
    out = steps[0].out_dir(store)
    assert [p.name for p in sorted(out.iterdir()) if not p.name.startswith(".")] == [
        "_DONE-00000", "_SUCCESS", "progress-00000.jsonl", "records-00000.jsonl", "records.jsonl", "spec.json", "stats.json",
    ]  # fmt: skip
    spec = json.loads((out / "spec.json").read_text())
    assert spec["hashed"] == {"n": 20} and "packages" in spec and "git" in spec
    assert spec["params"]["calls_file"] == str(tmp_path / "calls"), "runtime fields travel, unhashed"
    second = run_plan(steps, store)
    assert calls(tmp_path) == 1, "a cached step must not run again"
    assert second["numbers"]["cached"] == 1 and first["numbers"]["cached"] == 0
    assert second["numbers"]["records"] == first["numbers"]["records"]


def test_crash_leaves_no_success_and_rerun_resumes_exactly(tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    clean.mkdir()
    reference = run_plan([numbers_step(clean)], clean / "store")["numbers"]
    expected = (numbers_step(clean).out_dir(clean / "store") / "records.jsonl").read_text()

    store = tmp_path / "store"
    with pytest.raises(RuntimeError, match="planned crash"):
        run_plan([numbers_step(tmp_path, crash_after=2)], store)
    out = numbers_step(tmp_path).out_dir(store)
    assert not (out / "_SUCCESS").exists()
    with Journal(out) as journal:
        assert len(journal.done) == 6  # two batches of 3 were committed before the crash
    stats = run_plan([numbers_step(tmp_path)], store)["numbers"]
    assert (out / "records.jsonl").read_text() == expected
    for key in ("in", "out", "dropped_mod5", "records"):
        assert stats[key] == reference[key], key
    assert stats["in"] == 20


def test_torn_write_is_rolled_back(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        journal.commit(["a"], [Seed(id="1", parent_id="a", code="x", name="f", source="s")], {"in": 1})
    # A crash between the records write and the progress line: records without a commit.
    with open(tmp_path / "records-00000.jsonl", "a") as f:
        f.write('{"id": "2", "parent_id": "b", "code": "y", "na')
    with open(tmp_path / "progress-00000.jsonl", "a") as f:
        f.write('{"ids": ["b"], "end": 9')
    with Journal(tmp_path) as journal:
        assert journal.done == {"a"}
        assert journal.counters["in"] == 1
    lines = (tmp_path / "records-00000.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["id"] == "1"


def test_killed_process_resumes_with_the_same_output(tmp_path: Path) -> None:
    """SIGKILL the orchestrator mid-step; the re-run finishes with the uninterrupted output."""
    reference_dir = tmp_path / "ref"
    reference_dir.mkdir()
    run_plan([numbers_step(reference_dir, n=30)], reference_dir / "store")
    expected = (numbers_step(reference_dir, n=30).out_dir(reference_dir / "store") / "records.jsonl").read_text()

    store = tmp_path / "store"
    script = (
        "import sys; from pathlib import Path; from tests.test_step import numbers_step; "
        "from sca.runner import run_plan; "
        f"run_plan([numbers_step(Path({str(tmp_path)!r}), n=30, sleep=0.3)], Path({str(store)!r}))"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    out = numbers_step(tmp_path, n=30).out_dir(store)
    deadline = time.time() + 60
    while time.time() < deadline:
        progress = out / "progress-00000.jsonl"
        if progress.exists() and len(progress.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "_SUCCESS").exists()
    run_plan([numbers_step(tmp_path, n=30)], store)
    assert (out / "records.jsonl").read_text() == expected


def test_force_recomputes_downstream_too_and_unknown_force_is_an_error(tmp_path: Path) -> None:
    store = tmp_path / "store"
    numbers = numbers_step(tmp_path)
    upper = Step("upper", "tests.helpers.steps:upper", {}, {"numbers": numbers})
    steps = [numbers, upper]
    first = run_plan(steps, store)
    (numbers.out_dir(store) / "stale-file").write_text("from an older run")
    again = run_plan(steps, store, force=["numbers"])
    assert calls(tmp_path) == 2
    assert again["upper"]["cached"] == 0, "a step whose input was recomputed is recomputed"
    assert again["numbers"]["records"] == first["numbers"]["records"]
    assert not (numbers.out_dir(store) / "stale-file").exists(), "a forced step starts from an empty directory"
    with pytest.raises(ValueError, match="unknown steps.*nope"):
        run_plan(steps, store, force=["nope"])


def test_dry_run_statuses(tmp_path: Path) -> None:
    store = tmp_path / "store"
    numbers = numbers_step(tmp_path)
    upper = Step("upper", "tests.helpers.steps:upper", {}, {"numbers": numbers})
    assert [s for _, s in plan_status([numbers, upper], store, set())] == ["run", "blocked"]
    run_plan([numbers], store)
    assert [s for _, s in plan_status([numbers, upper], store, set())] == ["cached", "run"]
    assert [s for _, s in plan_status([numbers, upper], store, {"numbers"})] == ["run", "blocked"]


def test_lock_stops_a_second_writer(tmp_path: Path) -> None:
    step = numbers_step(tmp_path)
    out = step.out_dir(tmp_path / "store")
    with step_lock(out), pytest.raises(StepLocked, match="another process"):
        execute(step, tmp_path / "store", {})


def test_subprocess_step_and_dependency_flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    store = tmp_path / "store"
    numbers = numbers_step(tmp_path)
    upper = Step("upper", "tests.helpers.steps:upper", {}, {"numbers": numbers}, where="subprocess")
    stats = run_plan([numbers, upper], store)
    assert stats["upper"]["pid"] != os.getpid()
    made = read_records(upper.out_dir(store), Seed)
    parents = {s.id for s in read_records(numbers.out_dir(store), Seed)}
    assert {s.parent_id for s in made} == parents and all(s.code.isupper() for s in made)


def test_shards_merge_to_the_single_process_output(tmp_path: Path) -> None:
    one = numbers_step(tmp_path, n=40)
    run_plan([one], tmp_path / "one")
    sharded = Step(one.name, one.fn, one.params, num_shards=3)
    assert sharded.key == one.key
    stats = run_plan([sharded], tmp_path / "three")["numbers"]
    out = sharded.out_dir(tmp_path / "three")
    assert len(list(out.glob("records-0000*.jsonl"))) == 3
    assert (out / "records.jsonl").read_text() == (one.out_dir(tmp_path / "one") / "records.jsonl").read_text()
    assert stats["in"] == 40


def test_unfinished_step_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="did not finish"):
        read_records(tmp_path, Seed)


def test_corrupt_record_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / "records.jsonl").write_text(
        '{"id": "1", "parent_id": "", "code": "x", "name": "f", "source": "s"}\n{oops\n'
    )
    with pytest.raises(ValueError, match=r"records.jsonl:2: corrupt JSON"):
        read_records(tmp_path, Seed)
    (tmp_path / "records.jsonl").write_text('{"id": "1", "parent_id": "", "cod": "x", "name": "f", "source": "s"}\n')
    with pytest.raises(
        ValueError, match=r"records.jsonl:1: not a Seed record .*unknown fields \['cod'\].*missing \['code'\]"
    ):
        read_records(tmp_path, Seed)


def _orphan_survives(tmp_path: Path, guard: bool) -> bool:
    """Start a launcher that starts a child in its own session (as torchrun does), SIGKILL the launcher,
    and say whether the child is still alive 10 s later."""
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / f"child-{guard}.pid"
    child = (
        "import os, sys, time\n"
        + ("from sca.step import die_with_parent\ndie_with_parent()\n" if guard else "")
        + f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n"
    )
    launcher = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', {child!r}], start_new_session=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", launcher], cwd=Path(__file__).resolve().parent.parent)
    deadline = time.time() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() < deadline, "the child never started"
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    def alive() -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            return False
        return state != "Z"

    deadline = time.time() + 10
    while alive() and time.time() < deadline:
        time.sleep(0.1)
    survived = alive()
    if survived:
        os.kill(pid, signal.SIGKILL)
    return survived


def test_a_shard_process_dies_with_its_launcher(tmp_path: Path) -> None:
    assert _orphan_survives(tmp_path, guard=False), "control: a child in its own session outlives a SIGKILLed parent"
    assert not _orphan_survives(tmp_path, guard=True), "die_with_parent() must take the child down with its launcher"
