"""JSONL record files with exactly-once, resumable writes.

A step writes its outputs through a :class:`Journal`, one per shard::

    records-00000.jsonl   outputs, appended and flushed per commit
    progress-00000.jsonl  one line per commit: the input ids it finished, the byte offset of
                          records-00000.jsonl after it, and the commit's counters

On re-open after a crash the records file is truncated back to the last committed offset, so the
outputs of a half-done batch are dropped and redone, never duplicated, and inputs whose output was
nothing (a parse failure, a filter) are remembered as done too. When every shard is done,
:func:`merge_shards` writes ``records.jsonl`` sorted by id, so the final file does not depend on the
number of shards, batch sizes or resume points.
"""

from __future__ import annotations

import heapq
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from sca.records import from_dict, to_json

R = TypeVar("R")

SUCCESS = "_SUCCESS"
MERGED = "records.jsonl"


def shard_name(kind: str, shard: int) -> str:
    return f"{kind}-{shard:05d}.jsonl"


class Journal:
    """Exactly-once output log of one shard of a step."""

    def __init__(self, out: Path, shard: int = 0) -> None:
        self.records_path = out / shard_name("records", shard)
        self.progress_path = out / shard_name("progress", shard)
        self.done: set[str] = set()
        self.counters: Counter[str] = Counter()
        end = self._replay()
        with open(self.records_path, "ab") as f:
            f.truncate(end)
        self._records = open(self.records_path, "ab")  # noqa: SIM115 - closed in close()
        self._progress = open(self.progress_path, "ab")  # noqa: SIM115

    def _replay(self) -> int:
        """Load done ids and counters; drop a torn last progress line. Returns the committed offset."""
        end = 0
        if not self.progress_path.exists():
            return end
        good = 0
        with open(self.progress_path, "rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # torn write: that commit never happened
                entry = json.loads(raw)
                self.done.update(entry["ids"])
                self.counters.update(entry["counts"])
                end = entry["end"]
                good += len(raw)
        with open(self.progress_path, "ab") as f:
            f.truncate(good)
        return end

    def commit(self, ids: Iterable[str], records: Iterable[Any], counts: Mapping[str, int] | None = None) -> None:
        """Append ``records`` and mark the input ``ids`` as finished, atomically with respect to a crash."""
        for record in records:
            self._records.write((to_json(record) + "\n").encode())
        self._records.flush()
        os.fsync(self._records.fileno())
        ids = list(ids)
        counts = dict(counts or {})
        entry = {"ids": ids, "end": self._records.tell(), "counts": counts}
        self._progress.write((json.dumps(entry) + "\n").encode())
        self._progress.flush()
        self.done.update(ids)
        self.counters.update(counts)

    def close(self) -> None:
        self._records.close()
        self._progress.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(
                    f"{path}:{lineno}: corrupt JSON line ({e}); delete the step directory to redo it"
                ) from e


def read_records(step_dir: Path, cls: type[R]) -> list[R]:
    """Records of a finished step, in id order. Refuses a step that has not finished."""
    if not (step_dir / SUCCESS).exists():
        raise FileNotFoundError(
            f"{step_dir} has no {SUCCESS}: the step did not finish; re-run the pipeline to resume it"
        )
    return list(iter_records(step_dir / MERGED, cls))


def iter_records(path: Path, cls: type[R]) -> Iterator[R]:
    for lineno, data in iter_jsonl(path):
        yield from_dict(cls, data, where=f"{path}:{lineno}")


def shard_of(record_id: str, num_shards: int) -> int:
    """Which shard owns a record: by its id, so sharding does not depend on input order."""
    return int(record_id[:8], 16) % num_shards


def merge_shards(out: Path) -> int:
    """Write ``records.jsonl``: every shard's records, sorted by id. Returns the number of records."""
    runs = []
    for path in sorted(out.glob("records-*.jsonl")):
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line]
        lines.sort(key=lambda line: json.loads(line)["id"])
        runs.append(lines)
    tmp = out / (MERGED + ".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for line in heapq.merge(*runs, key=lambda line: json.loads(line)["id"]):
            f.write(line + "\n")
            n += 1
    os.replace(tmp, out / MERGED)
    return n


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_finished_step(out: Path, records: Iterable[Any]) -> Path:
    """A finished step directory holding ``records``: inputs made outside the pipeline (hand-made SFT data,
    benchmarks, tests) read exactly like a step's outputs."""
    out.mkdir(parents=True, exist_ok=True)
    records = list(records)
    with Journal(out) as journal:
        journal.commit([r.id for r in records], records)
    merge_shards(out)
    (out / SUCCESS).write_text("ok\n")
    return out
