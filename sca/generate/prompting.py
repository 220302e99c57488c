"""Prompt templates, rendering (base-model completion or chat) and completion parsing.

A template file (``prompts/<stage>.txt``) has sections introduced by ``@@ <name>`` lines::

    @@ examples   examples.yaml sha256=<hex>   (the pinned examples file, see sca.generate.fewshot)
    @@ system     what the model is asked to do
    @@ input      one example's input, with {fields}
    @@ cue        the line after which the model answers (``### Concepts``, ``<response>``)
    @@ output     one example's answer, with {fields}
    @@ stop       stop strings, one per line

Completion mode (base models) renders ``system``, then ``## Example i`` blocks of input + cue + output,
then the query's input and cue; the model continues after the cue. Chat mode renders the same examples
as prior user/assistant turns and passes the cue as the start of the assistant's answer, so both modes
produce the same kind of completion and share one parser. The loop that sends the prompts and commits
the parsed records is :mod:`sca.generate.batches`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sca.config import prompt_path
from sca.generate.fewshot import file_sha256
from sca.llm.contract import Completion

T = TypeVar("T")
SECTIONS = ("examples", "system", "input", "cue", "output", "stop")
EXAMPLE_HEADER = "## Example"
FIELD_RE = re.compile(r"\{(\w+)\}")

# ---- templates ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    path: Path
    examples: Path
    system: str
    input: str
    cue: str
    output: str
    stop: tuple[str, ...]


def load_template(name: str) -> Template:
    """Parse a template file and check that its pinned examples file is unchanged."""
    path = prompt_path(name)
    sections: dict[str, list[str]] = {}
    current = None
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("@@ "):
            current = line[3:].strip()
            if current not in SECTIONS:
                raise ValueError(f"{path}:{lineno}: unknown section {current!r}; sections are {list(SECTIONS)}")
            sections[current] = []
        elif current is None:
            if line.strip():
                raise ValueError(f"{path}:{lineno}: text before the first '@@ <section>' line")
        else:
            sections[current].append(line)
    missing = [s for s in SECTIONS if s != "stop" and s not in sections]
    if missing:
        raise ValueError(f"{path}: missing sections {missing}")
    text = {k: "\n".join(v).strip("\n") for k, v in sections.items()}
    m = re.fullmatch(r"(\S+) sha256=([0-9a-f]{64})", text["examples"].strip())
    if m is None:
        raise ValueError(f"{path}: '@@ examples' must be one line '<file> sha256=<64 hex>'")
    examples = path.parent / m.group(1)
    if not examples.exists():
        raise ValueError(f"{path}: examples file {examples} not found")
    if file_sha256(examples) != m.group(2):
        raise ValueError(
            f"{path} pins {examples.name} sha256={m.group(2)[:12]}... but the file is now "
            f"{file_sha256(examples)[:12]}...; run `python -m sca.generate.fewshot --pin` "
            "(the new pin changes the step hash, so the stage reruns)"
        )
    stop = tuple(s for s in sections.get("stop", []) if s)
    return Template(path, examples, text["system"], text["input"], text["cue"].strip(), text["output"], stop)


def fill(text: str, fields: Mapping[str, str], where: Path | str) -> str:
    """Substitute ``{name}`` placeholders in one pass (values may contain braces: they are code)."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in fields:
            raise KeyError(f"{where}: placeholder {{{m.group(1)}}} has no value; available: {sorted(fields)}")
        return fields[m.group(1)]

    return FIELD_RE.sub(sub, text)


@dataclass(frozen=True)
class Rendered:
    prompt: str | list[dict[str, str]]
    prefix: str  # chat mode: the cue, as the start of the assistant's answer
    stop: tuple[str, ...]


def render(template: Template, shots: Sequence[Mapping[str, str]], query: Mapping[str, str], chat: bool) -> Rendered:
    """The prompt for one query, with ``shots`` as few-shot examples."""
    where = template.path
    if chat:
        messages = [{"role": "system", "content": template.system}]
        for shot in shots:
            messages.append({"role": "user", "content": fill(template.input, shot, where)})
            messages.append({"role": "assistant", "content": template.cue + "\n" + fill(template.output, shot, where)})
        messages.append({"role": "user", "content": fill(template.input, query, where)})
        return Rendered(messages, template.cue + "\n", template.stop)
    parts = [template.system]
    for i, shot in enumerate(shots, 1):
        block = f"{fill(template.input, shot, where)}\n\n{template.cue}\n{fill(template.output, shot, where)}"
        parts.append(f"{EXAMPLE_HEADER} {i}\n{block}")
    parts.append(f"{EXAMPLE_HEADER} {len(shots) + 1}\n{fill(template.input, query, where)}\n\n{template.cue}\n")
    # A base model that finished its answer starts the next example: stop there.
    return Rendered("\n\n".join(parts), "", (EXAMPLE_HEADER, *template.stop))


# ---- parsing -----------------------------------------------------------------------------------------


class ParseError(ValueError):
    """A completion that cannot be used; ``reason`` becomes the counter ``dropped_<reason>``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def first_line_complete(text: str) -> bool:
    """A concepts answer is its first line: a cut answer is usable once that line has ended."""
    return "\n" in text.lstrip()


def parse_concepts(text: str) -> list[str]:
    """The first non-empty line, split on commas; base models ramble past it, so the rest is ignored."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    items = [c.strip().strip(".").strip() for c in line.split(",")]
    concepts = list(dict.fromkeys(c for c in items if c))
    if not concepts:
        raise ParseError("empty")
    return concepts


def parse_instruction(text: str) -> str:
    text = text.strip()
    if not text:
        raise ParseError("empty")
    return text


@dataclass(frozen=True)
class CodeBlock:
    lang: str
    code: str


PYTHON_TAGS = ("python", "py", "python3")


def code_blocks(markdown: str) -> list[CodeBlock]:
    """Fenced blocks in order; raises ParseError('unclosed_code') for a fence left open (cut code)."""
    blocks = []
    lang: str | None = None
    lines: list[str] = []
    for line in markdown.splitlines():
        stripped = line.strip()
        if lang is None:
            if stripped.startswith("```"):
                lang = stripped[3:].strip().lower()
                lines = []
        elif stripped == "```":
            blocks.append(CodeBlock(lang, "\n".join(lines).strip("\n") + "\n"))
            lang = None
        else:
            lines.append(line)
    if lang is not None:
        raise ParseError("unclosed_code", "a code fence is never closed")
    return blocks


def python_blocks(markdown: str) -> list[CodeBlock]:
    """Blocks tagged as Python; untagged blocks count only when no block is tagged."""
    blocks = code_blocks(markdown)
    tagged = [b for b in blocks if b.lang in PYTHON_TAGS]
    return tagged or [b for b in blocks if b.lang == ""]


# Work left undone. `return NotImplemented` is legitimate operator code, so only the error class counts.
PLACEHOLDER_RE = re.compile(r"\b(todo|fixme)\b|(write )?your code (goes )?here|notimplementederror", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedResponse:
    text: str  # what the SFT example shows: reasoning + solution blocks, tests removed
    solution: str
    tests: str


def parse_response(text: str) -> ParsedResponse:
    """Split an I->R completion into the response and its tests.

    The response is everything before ``</response>``; its solution is all of its Python blocks, in
    order, joined by a blank line (one program: a helper or a usage example in a second block runs with
    the first, as the method runs every block). The tests are the Python blocks of the ``<tests>`` section
    after it, joined the same way. Python blocks are those tagged python/py/python3, or the untagged ones
    when none is tagged; other blocks (sample output, shell commands) are not code to run.
    """
    if not text.strip():
        raise ParseError("empty")
    head, sep, tail = text.partition("</response>")
    if not sep:
        raise ParseError("no_tests", "no </response> separator, so no tests section")
    if "</response>" in tail:
        raise ParseError("multiple_responses")
    _, tests_sep, tests_text = tail.partition("<tests>")
    if not tests_sep:
        raise ParseError("no_tests", "no <tests> section after </response>")
    tests_text = tests_text.split("</tests>", 1)[0]
    response = head.strip()
    solution_blocks = python_blocks(response)
    if not solution_blocks:
        raise ParseError("no_code", "the response has no python code block")
    test_blocks = python_blocks(tests_text)
    if not test_blocks:
        raise ParseError("no_tests", "the tests section has no python code block")
    solution, tests = join_blocks(solution_blocks), join_blocks(test_blocks)
    if "assert" not in tests:
        raise ParseError("no_asserts", "the tests assert nothing")
    if PLACEHOLDER_RE.search((response + tests).lower()):
        raise ParseError("placeholder", "the response leaves work undone (TODO / your code here)")
    return ParsedResponse(response, solution, tests)


def join_blocks(blocks: Sequence[CodeBlock]) -> str:
    """Several blocks as one program, in document order, a blank line apart."""
    return "\n".join(b.code for b in blocks)


YES_RE, NO_RE = re.compile(r"\byes\b"), re.compile(r"\bno\b")


def parse_verdict(texts: Sequence[str]) -> bool | None:
    """The seed judge (docs/method.md): count yes and no in the answers; True if more yes, False if more no, None on a tie.

    Only each answer's first non-empty line is read: the reason on the next line may say "no" in passing.
    """
    firsts = [next((ln for ln in t.splitlines() if ln.strip()), "") for t in texts]
    joined = " ".join(firsts).lower()
    yes, no = len(YES_RE.findall(joined)), len(NO_RE.findall(joined))
    return None if yes == no else yes > no


def each_sample(
    completions: Sequence[Completion],
    parse: Callable[[int, str], T],
    counts: Counter[str] | None = None,
    usable_if_cut: Callable[[str], bool] | None = None,
) -> tuple[list[T], Counter[str]]:
    """Parse every completion; cut ones (finish_reason 'length') and parse failures are counted, not kept.

    ``usable_if_cut(text)`` keeps a cut completion whose needed part is already complete.
    """
    counts = counts if counts is not None else Counter()
    out = []
    for i, completion in enumerate(completions):
        if completion.finish_reason == "length" and not (usable_if_cut and usable_if_cut(completion.text)):
            counts["dropped_truncated"] += 1
            continue
        try:
            out.append(parse(i, completion.text))
        except ParseError as e:
            counts[f"dropped_{e.reason}"] += 1
    return out, counts


def unique_by_id(records: Sequence[T], counts: Counter[str]) -> list[T]:
    """Drop repeats among an input's samples (n > 1 can sample the same answer twice), counting them."""
    unique = list({getattr(r, "id"): r for r in records}.values())  # noqa: B009
    if len(unique) < len(records):
        counts["dropped_duplicate"] += len(records) - len(unique)
    return unique
