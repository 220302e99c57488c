"""Progress bars and summary tables, the same everywhere: tqdm bars with rate and ETA, rich tables."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from tqdm import tqdm

console = Console(stderr=True)
_terminal: TextIO | None = None  # set in a child whose stderr is its log file (sca.logs.attach_terminal)


def terminal() -> TextIO:
    """Where sca's own output goes: stderr, or the orchestrator's terminal in a child step."""
    return _terminal or sys.stderr


def use_terminal(stream: TextIO) -> None:
    global _terminal
    _terminal = stream
    console.file = stream


def bar(total: int | None, desc: str, unit: str = "rec", initial: int = 0) -> tqdm[Any]:
    """A progress bar on the terminal with rate and ETA; ``initial`` counts work resumed from a previous run."""
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, dynamic_ncols=True, file=terminal(), smoothing=0.1)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    t = Table(title=title)
    for c in columns:
        t.add_column(c, justify="left" if c == columns[0] else "right")
    for row in rows:
        t.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    return t


def print_counters(title: str, counters: Mapping[str, float]) -> None:
    """One table of a step's counters, printed at the end of the step."""
    console.print(table(title, ["counter", "value"], sorted(counters.items())))
