"""From a model's answer to a program EvalPlus can run.

An answer may be a fenced block (the usual case: the response prefix opens it), several blocks (solution,
then usage), no fence at all, or cut off by the token limit. The steps:

1. take the fenced block that defines the entry point (else the first block; else the whole text);
2. if it does not define the entry point but continues the prompt (a function body), prepend the prompt;
3. ``evalplus.sanitize``: the longest part that parses (drops a truncated tail), reduced to the imports,
   the entry point and what it references (drops asserts, prints and ``__main__`` demos that could fail);
4. prepend the prompt's imports and helper definitions, which models often leave out
   (``from typing import List``; HumanEval/10's ``is_palindrome``, /32's ``poly``).
"""

from __future__ import annotations

import ast
import re

FENCE = re.compile(r"^```[ \t]*([\w+.-]*)[ \t]*$", re.MULTILINE)
PY_LANGS = {"", "python", "py", "python3", "py3"}


def code_blocks(text: str) -> list[str]:
    """Python fenced blocks in order; an unclosed last block (truncated output) runs to the end."""
    blocks: list[str] = []
    marks = list(FENCE.finditer(text))
    i = 0
    while i < len(marks):
        opening = marks[i]
        closing = marks[i + 1] if i + 1 < len(marks) else None
        body = text[opening.end() + 1 : closing.start() if closing else len(text)]
        if opening.group(1).lower() in PY_LANGS:
            blocks.append(body)
        i += 2
    return blocks


def defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def pick_block(text: str, entry_point: str) -> str:
    blocks = code_blocks(text)
    for block in blocks:
        if defines(block, entry_point):
            return block
    return blocks[0] if blocks else text


def prompt_context(prompt: str, entry_point: str) -> list[str]:
    """The prompt's top-level imports and definitions other than the entry point, as source."""
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        # A HumanEval prompt ends in the entry point's docstring: complete it with a body to parse it.
        try:
            tree = ast.parse(prompt + "\n    pass\n")
        except SyntaxError:
            return [line for line in prompt.splitlines() if re.match(r"(import|from)\s+\w", line)]
    parts = []
    for node in tree.body:
        is_helper = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name != entry_point
        if isinstance(node, ast.Import | ast.ImportFrom) or is_helper:
            segment = ast.get_source_segment(prompt, node)
            if segment:
                parts.append(segment)
    return parts


def extract_code(text: str, prompt: str, entry_point: str) -> str:
    """The program to test: the model's code for ``entry_point`` with the prompt's context prepended."""
    from evalplus.sanitize import sanitize

    code = pick_block(text, entry_point)
    if not defines(code, entry_point) and code.strip() and defines(prompt, entry_point):
        code = prompt + code
    code = sanitize(code, entry_point)
    context = [part for part in prompt_context(prompt, entry_point) if part not in code]
    return "\n".join([*context, code]).strip() + "\n"
