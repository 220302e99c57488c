"""Decontamination against HumanEval(+) and MBPP(+): exact substring and word n-gram overlap.

The benchmark texts come from the eval's own loader (:mod:`sca.benchmarks`), so the data decontaminated
against is the data we evaluate on: the files the pipeline names, or the releases it downloads.

Benchmark strings: HumanEval docstrings (of the entry point) and canonical solutions; MBPP task
descriptions, their example asserts and canonical solutions.

* **exact**: the reference's rule (a benchmark string occurs in the text), made robust to formatting:
  both sides are lower-cased and runs of whitespace collapsed, so re-indented copies still match.
  Strings of fewer than ``min_exact_words`` words are ignored; this generalises the reference's
  whitelist of trivial HumanEval solutions (``return x + y``, ``return len(string)``) that would
  otherwise flag half of all Python code. Instead of testing every string against every text
  (quadratic), each string is indexed under its rarest inner word 4-gram; a text is only compared with
  the strings whose anchor occurs in it.
* **ngram**: the text shares a word n-gram (``\\w+`` tokens, lower-cased) with a benchmark string.
  This catches paraphrases and light edits that keep a run of n words. An n-gram found in
  ``common_ngram_tasks`` or more benchmark tasks is boilerplate (``for i in range len ...``) and is
  not indexed.
"""

from __future__ import annotations

import ast
import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sca.config import DEFAULT_CACHE

if TYPE_CHECKING:
    from sca.benchmarks import BenchmarkFiles

BENCHMARKS = ("humaneval", "mbpp")
_TOKEN = re.compile(r"\w+")
_SPACE = re.compile(r"\s+")
ANCHOR = 4  # words in an exact-match anchor


@dataclass(frozen=True)
class BenchmarkText:
    task_id: str  # "HumanEval/12", "Mbpp/7"
    kind: str  # "prompt" | "solution" | "assert"
    text: str


def normalize(text: str) -> str:
    return _SPACE.sub(" ", text.lower()).strip()


def words(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _entry_docstring(prompt: str, entry_point: str) -> str:
    tree = ast.parse(prompt)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            return ast.get_docstring(node) or ""
    raise ValueError(f"HumanEval prompt has no function {entry_point!r}")


def benchmark_texts(tasks: Mapping[str, Mapping[str, Any]], benchmark: str) -> Iterator[BenchmarkText]:
    for task_id, task in tasks.items():
        if benchmark == "humaneval":
            yield BenchmarkText(task_id, "prompt", _entry_docstring(task["prompt"], task["entry_point"]))
        else:
            lines = task["prompt"].strip().strip('"').strip().splitlines()
            yield BenchmarkText(task_id, "prompt", "\n".join(ln for ln in lines if not ln.startswith("assert")))
            for ln in lines:
                if ln.startswith("assert"):
                    yield BenchmarkText(task_id, "assert", ln)
        yield BenchmarkText(task_id, "solution", task["canonical_solution"])


def load_benchmark_texts(
    benchmarks: Sequence[str],
    humaneval_path: str = "",
    mbpp_path: str = "",
    cache: str = DEFAULT_CACHE,
    versions: Mapping[str, str] | None = None,
) -> list[BenchmarkText]:
    """Prompts, solutions and asserts of the benchmarks, read like the eval step reads them (one loader)."""
    from sca.benchmarks import load_benchmark, resolve_path

    unknown = sorted(set(benchmarks) - set(BENCHMARKS))
    if unknown:
        raise ValueError(f"unknown decontamination benchmarks {unknown}; choose from {list(BENCHMARKS)}")
    texts: list[BenchmarkText] = []
    for b in benchmarks:
        path = resolve_path(b, humaneval_path if b == "humaneval" else mbpp_path, cache, (versions or {}).get(b, ""))
        tasks = load_benchmark(b, path).problems
        texts.extend(benchmark_texts(tasks, b))
    return texts


class Decontaminator:
    """``check(text)`` names the first benchmark item a text leaks, or returns None."""

    def __init__(
        self, texts: Sequence[BenchmarkText], ngram: int = 10, min_exact_words: int = 8, common_ngram_tasks: int = 5
    ) -> None:
        if ngram < 0:
            raise ValueError(f"decontamination ngram={ngram} must be >= 0 (0 = exact matching only)")
        self.ngram = ngram
        self.exact: list[tuple[str, str]] = []  # (normalized string, task id)
        self._short: list[int] = []  # strings too short for an inner anchor: compared with every text
        self._anchors: dict[tuple[str, ...], list[int]] = defaultdict(list)
        word_lists = [words(t.text) for t in texts]
        gram_freq: Counter[tuple[str, ...]] = Counter()
        for ws in word_lists:
            gram_freq.update({tuple(ws[i : i + ANCHOR]) for i in range(len(ws) - ANCHOR + 1)})
        for t, ws in zip(texts, word_lists, strict=True):
            if len(ws) < min_exact_words:
                continue
            idx = len(self.exact)
            self.exact.append((normalize(t.text), t.task_id))
            # The first and last words may be cut mid-word in the text ("turn x" in "return x");
            # inner words are whole, so the anchor is taken from them.
            inner = [tuple(ws[i : i + ANCHOR]) for i in range(1, len(ws) - ANCHOR)]
            if inner:
                self._anchors[min(inner, key=lambda g: (gram_freq[g], g))].append(idx)
            else:
                self._short.append(idx)
        self._ngrams: dict[tuple[str, ...], str] = {}
        if ngram:
            owners: dict[tuple[str, ...], set[str]] = defaultdict(set)
            for t, ws in zip(texts, word_lists, strict=True):
                for i in range(len(ws) - ngram + 1):
                    g = tuple(ws[i : i + ngram])
                    owners[g].add(t.task_id)
                    self._ngrams.setdefault(g, t.task_id)
            for g, tasks in owners.items():
                if len(tasks) >= common_ngram_tasks:
                    del self._ngrams[g]

    def check_exact(self, text: str, ws: list[str] | None = None) -> str | None:
        norm = normalize(text)
        ws = words(text) if ws is None else ws
        candidates = set(self._short)
        for i in range(len(ws) - ANCHOR + 1):
            hit = self._anchors.get(tuple(ws[i : i + ANCHOR]))
            if hit:
                candidates.update(hit)
        for idx in sorted(candidates):
            s, task_id = self.exact[idx]
            if s in norm:
                return f"exact:{task_id}"
        return None

    def check_ngram(self, text: str, ws: list[str] | None = None) -> str | None:
        if not self.ngram:
            return None
        ws = words(text) if ws is None else ws
        n = self.ngram
        for i in range(len(ws) - n + 1):
            task_id = self._ngrams.get(tuple(ws[i : i + n]))
            if task_id is not None:
                return f"ngram{n}:{task_id}"
        return None

    def check(self, text: str) -> str | None:
        """``"exact:HumanEval/12"``, ``"ngram10:Mbpp/7"`` or None."""
        ws = words(text)
        return self.check_exact(text, ws) or self.check_ngram(text, ws)


def load_decontaminator(files: BenchmarkFiles, ngram: int = 10) -> Decontaminator:
    """The texts of every benchmark in ``files``, read from its file (or release)."""
    texts = load_benchmark_texts(
        list(files.hashes),
        files.paths["humaneval"],
        files.paths["mbpp"],
        files.cache,
        files.versions,
    )
    return Decontaminator(texts, ngram=ngram)
