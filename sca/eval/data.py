"""HumanEval+ and MBPP+ problems, from a local file or evalplus's release download.

We read the files ourselves instead of through ``evalplus.data.get_*_plus``: those read
``HUMANEVAL_OVERRIDE_PATH``/``MBPP_OVERRIDE_PATH`` once, at import, and cache under a global
``~/.cache/evalplus``, so two datasets (or versions) in one process would silently share one file.
The parsing is evalplus's own: ``stream_jsonl`` (plain or gzipped JSONL), ``mbpp_deserialize_inputs``
(MBPP+ stores tuples/sets/complex numbers as JSON lists/strings) and the same required keys.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DATASETS = ("humaneval", "mbpp")
# The versions evalplus 0.3.1 downloads by default; other versions are used by path.
RELEASES = {
    "humaneval": ("HumanEvalPlus", "v0.1.10"),
    "mbpp": ("MbppPlus", "v0.2.0"),
}
REQUIRED = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input", "atol")

Problem = dict[str, Any]


@dataclass(frozen=True)
class Benchmark:
    """The problems of one dataset file, by task id in file order, with a content digest per task."""

    dataset: str
    path: Path
    problems: Mapping[str, Problem]
    digests: Mapping[str, str]  # task id -> hash of the raw task: keys its cached ground truth

    def select(self, limit: int = 0, task_ids: Sequence[str] = ()) -> Benchmark:
        """The listed task ids (in file order; ids of the other benchmark are ignored), then the first ``limit``."""
        ids = list(self.problems)
        if task_ids:
            wanted = set(task_ids)
            ids = [t for t in ids if t in wanted]
        if limit > 0:
            ids = ids[:limit]
        return replace(self, problems={t: self.problems[t] for t in ids}, digests={t: self.digests[t] for t in ids})


def task_digest(dataset: str, raw_task: Mapping[str, Any]) -> str:
    payload = json.dumps({"dataset": dataset, "task": raw_task}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"dataset {dataset!r} is not one of {list(DATASETS)}")


def release_url(dataset: str) -> str:
    name, version = RELEASES[dataset]
    return f"https://github.com/evalplus/{name.lower()}_release/releases/download/{version}/{name}.jsonl.gz"


def download(dataset: str, cache: Path) -> Path:
    """The default release file, downloaded once into ``cache/eval/data`` (what evalplus would fetch)."""
    name, version = RELEASES[dataset]
    target = cache / "eval" / "data" / f"{name}-{version}.jsonl.gz"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    url = release_url(dataset)
    log.info("downloading %s to %s", url, target)
    tmp = target.with_name(target.name + ".tmp")
    try:
        urllib.request.urlretrieve(url, tmp)
    except OSError as e:
        raise FileNotFoundError(
            f"{name}-{version}.jsonl.gz: not found locally and could not be downloaded from {url} ({e}). "
            f"Offline, put the file in a folder and set SCA_DATA=<folder> (paths.data), or set "
            f"paths.{dataset}=<file>"
        ) from e
    os.replace(tmp, target)
    return target


def resolve_path(dataset: str, path: str, cache: str | os.PathLike[str]) -> Path:
    """A local problems file: ``path`` if given, else the default release under the cache."""
    check_dataset(dataset)
    if path:
        p = Path(path).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"{dataset} problems file {p} does not exist (paths.{dataset})")
        return p
    return download(dataset, Path(cache).expanduser())


def load_benchmark(dataset: str, path: Path) -> Benchmark:
    """The problems of a file, with evalplus's input deserialization applied."""
    from evalplus.data.mbpp import mbpp_deserialize_inputs
    from evalplus.data.utils import stream_jsonl

    check_dataset(dataset)
    problems: dict[str, Problem] = {}
    digests: dict[str, str] = {}
    try:
        tasks = list(stream_jsonl(str(path)))
    except (OSError, EOFError, ValueError) as e:  # gzip.BadGzipFile is an OSError, JSONDecodeError a ValueError
        raise ValueError(f"{path}: cannot read {dataset} problems as (gzipped) JSONL: {e}") from e
    for lineno, task in enumerate(tasks, 1):
        missing = [k for k in REQUIRED if k not in task]
        if missing:
            raise ValueError(
                f"{path}: record {lineno} is not a {RELEASES[dataset][0]} problem (missing {missing}); "
                f"is this an EvalPlus {dataset} file?"
            )
        digests[task["task_id"]] = task_digest(dataset, task)
        if dataset == "mbpp":
            task["base_input"] = mbpp_deserialize_inputs(task["task_id"], task["base_input"])
            task["plus_input"] = mbpp_deserialize_inputs(task["task_id"], task["plus_input"])
        problems[task["task_id"]] = task
    if not problems:
        raise ValueError(f"{path}: no {dataset} problems in the file")
    return Benchmark(dataset, path, problems, digests)
