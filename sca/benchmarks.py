"""HumanEval+ and MBPP+ problems, from a local file or evalplus's release download.

We read the files ourselves instead of through ``evalplus.data.get_*_plus``: those read
``HUMANEVAL_OVERRIDE_PATH``/``MBPP_OVERRIDE_PATH`` once, at import, and cache under a global
``~/.cache/evalplus``, so two datasets (or versions) in one process would silently share one file.
The parsing is evalplus's own: ``stream_jsonl`` (plain or gzipped JSONL), ``mbpp_deserialize_inputs``
(MBPP+ stores tuples/sets/complex numbers as JSON lists/strings) and the same required keys.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sca.params import runtime_field

if TYPE_CHECKING:
    from sca.config import Config

log = logging.getLogger(__name__)

DATASETS = ("humaneval", "mbpp")
NAMES = {"humaneval": "HumanEvalPlus", "mbpp": "MbppPlus"}
# The releases evalplus 0.3.1 downloads; eval.<dataset>_version picks another, or paths.<dataset> any file.
DEFAULT_VERSIONS = {"humaneval": "v0.1.10", "mbpp": "v0.2.0"}
# evalplus's dataset hash (md5 of the uncompressed JSONL) of the releases we know: what the data is, wherever
# it is read from. It is the "hash" evalplus writes into its results, so published results name their data.
RELEASE_HASHES = {
    ("humaneval", "v0.1.10"): "fe585eb4df8c88d844eeb463ea4d0302",
    ("humaneval", "v0.1.9"): "84f4b93a1270b492e4c54d5212da7a5b",
    ("mbpp", "v0.2.0"): "ee43ecabebf20deef4bb776a405ac5b1",
    ("mbpp", "v0.1.0"): "ebe95df0d5220f00cedd6f4bddea35e4",
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
    data_hash: str = ""  # evalplus's hash of the whole file (dataset_hash)

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


def dataset_hash(dataset: str, path: str | os.PathLike[str], version: str = "") -> str:
    """evalplus's hash of a problems file: the md5 of its uncompressed JSONL.

    ``path=""`` means the release to be downloaded: its known hash, or ``release:<name>`` for a release we
    have no hash of (then the downloaded file cannot be checked against the plan).
    """
    check_dataset(dataset)
    if not str(path):
        version = version or DEFAULT_VERSIONS[dataset]
        return RELEASE_HASHES.get((dataset, version), f"release:{release_name(dataset, version)}")
    md5 = hashlib.md5()
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                md5.update(chunk)
    except OSError as e:  # gzip.BadGzipFile too
        raise ValueError(f"{path}: cannot read the {dataset} problems file: {e}") from e
    return md5.hexdigest()


def data_label(dataset: str, data_hash: str) -> str:
    """A release's version for a hash we know (``v0.1.9``), else the hash's first digits."""
    versions = [v for (d, v), h in RELEASE_HASHES.items() if d == dataset and h == data_hash]
    return versions[0] if versions else data_hash.removeprefix("release:")[:12]


def check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"dataset {dataset!r} is not one of {list(DATASETS)}")


def release_name(dataset: str, version: str = "") -> str:
    """``HumanEvalPlus-v0.1.10``: the file stem of a release, as evalplus caches it."""
    check_dataset(dataset)
    return f"{NAMES[dataset]}-{version or DEFAULT_VERSIONS[dataset]}"


def release_url(dataset: str, version: str = "") -> str:
    name = NAMES[dataset]
    version = version or DEFAULT_VERSIONS[dataset]
    return f"https://github.com/evalplus/{name.lower()}_release/releases/download/{version}/{name}.jsonl.gz"


def download(dataset: str, cache: Path, version: str = "") -> Path:
    """A release file, downloaded once into ``cache/eval/data`` (what evalplus would fetch)."""
    release = release_name(dataset, version)
    target = cache / "eval" / "data" / f"{release}.jsonl.gz"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    url = release_url(dataset, version)
    log.info("downloading %s to %s", url, target)
    tmp = target.with_name(target.name + ".tmp")
    try:
        urllib.request.urlretrieve(url, tmp)
    except OSError as e:
        raise FileNotFoundError(
            f"{release}.jsonl.gz: not found locally and could not be downloaded from {url} ({e}). "
            f"Offline, put the file in a folder and set SCA_DATA=<folder> (paths.data), or set "
            f"paths.{dataset}=<file>"
        ) from e
    os.replace(tmp, target)
    return target


def resolve_path(dataset: str, path: str, cache: str | os.PathLike[str], version: str = "") -> Path:
    """A local problems file: ``path`` if given, else the release ``version`` (default: evalplus's) under the cache."""
    check_dataset(dataset)
    if path:
        p = Path(path).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"{dataset} problems file {p} does not exist (paths.{dataset})")
        return p
    return download(dataset, Path(cache).expanduser(), version)


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
                f"{path}: record {lineno} is not a {NAMES[dataset]} problem (missing {missing}); "
                f"is this an EvalPlus {dataset} file?"
            )
        digests[task["task_id"]] = task_digest(dataset, task)
        if dataset == "mbpp":
            task["base_input"] = mbpp_deserialize_inputs(task["task_id"], task["base_input"])
            task["plus_input"] = mbpp_deserialize_inputs(task["task_id"], task["plus_input"])
        problems[task["task_id"]] = task
    if not problems:
        raise ValueError(f"{path}: no {dataset} problems in the file")
    return Benchmark(dataset, path, problems, digests, dataset_hash(dataset, path))


# The benchmark files a config names, and what steps hash of them (the planner's view).


def benchmark_file(cfg: Config, benchmark: str) -> str:
    """The local file of a benchmark, or "" to let evalplus download its default release.

    Runtime, not hashed: the same release gives the same data wherever it is read from.
    """
    explicit = getattr(cfg.paths, benchmark)
    if explicit:
        if not Path(explicit).exists():
            raise FileNotFoundError(f"paths.{benchmark}={explicit} does not exist")
        return str(Path(explicit).resolve())
    if not cfg.paths.data:
        return ""
    release = release_name(benchmark, getattr(cfg.eval, f"{benchmark}_version"))
    for suffix in (".jsonl.gz", ".jsonl"):
        candidate = Path(cfg.paths.data) / (release + suffix)
        if candidate.exists():
            return str(candidate.resolve())
    raise FileNotFoundError(
        f"paths.data={cfg.paths.data} holds no {release}.jsonl(.gz); put the release file there, "
        f"set paths.{benchmark}=FILE, or unset SCA_DATA/paths.data to let evalplus download it"
    )


@dataclass(frozen=True)
class BenchmarkFiles:
    """The benchmarks a step reads: evalplus's hash of each file (in the step key), and where the files are.

    A file's location is runtime, its content is not: pointing ``paths.humaneval`` at another release must
    re-run evaluation and decontamination, while the same release read from a folder or downloaded must not.
    """

    hashes: dict[str, str]
    paths: dict[str, str] = runtime_field()
    """Benchmark -> local file; "" = the release ``versions[name]``, downloaded into ``cache``."""
    versions: dict[str, str] = runtime_field()
    cache: str = runtime_field()

    def only(self, names: Sequence[str]) -> BenchmarkFiles:
        return BenchmarkFiles({b: self.hashes[b] for b in names}, self.paths, self.versions, self.cache)

    def resolve(self, name: str) -> Path:
        """The local problems file of ``name`` (downloading the release into the cache if there is none)."""
        return resolve_path(name, self.paths[name], self.cache, self.versions[name])


def benchmark_files(cfg: Config) -> BenchmarkFiles:
    """Every benchmark's file and hash, each file hashed once per plan; steps take ``.only(...)`` of it."""
    paths = {b: benchmark_file(cfg, b) for b in DATASETS}
    versions = {b: getattr(cfg.eval, f"{b}_version") for b in DATASETS}
    return BenchmarkFiles(
        {b: dataset_hash(b, paths[b], versions[b]) for b in DATASETS}, paths, versions, cfg.paths.cache
    )
