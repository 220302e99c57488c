"""Each benchmark owns one marked block of docs/benchmarks.md and replaces only that block."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_block(block: str, mark: tuple[str, str]) -> Path:
    """Replace the block between ``mark`` in docs/benchmarks.md (other blocks are kept), or append it."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\nFigures written by `bench/*.py`.\n"
    if mark[0] in text and mark[1] in text:
        head, rest = text.split(mark[0], 1)
        text = head + block + rest.split(mark[1], 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    return DOC
