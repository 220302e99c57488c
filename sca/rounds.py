"""Rounds of self-alignment and the gate between them: round k+1 starts only if round k did not regress."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sca.step import Step

log = logging.getLogger("sca")


def split_rounds(plan: list[Step[Any]]) -> list[list[Step[Any]]]:
    """The plan as consecutive chunks: what precedes round 0 (seeds, base eval) joins round 0."""
    chunks: list[list[Step[Any]]] = [[]]
    for step in plan:
        prefix = step.name.split("/")[0]
        if prefix.startswith("r") and prefix[1:].isdigit() and int(prefix[1:]) >= len(chunks):
            chunks.append([])
        chunks[-1].append(step)
    return chunks


def eval_gate(before: Mapping[str, Any], after: Mapping[str, Any], margin: float) -> list[str]:
    """Benchmarks whose plus-test pass@1 fell by more than ``margin`` (the scores.json of two eval steps)."""
    drops = []
    for bench, scores in after.items():
        old = before.get(bench, {}).get("pass@1_plus")
        new = scores.get("pass@1_plus")
        if old is not None and new is not None and old - new > margin:
            drops.append(f"{bench}: pass@1+ {old:.3f} -> {new:.3f}")
    return drops


def gate_open(ran: list[Step[Any]], store: Path, margin: float) -> bool:
    """Whether the next round may start: the last round's eval did not fall below the model before it."""
    evals = [s for s in ran if s.stage == "eval" and (s.out_dir(store) / "scores.json").exists()]
    if len(evals) < 2:
        return True
    before, after = (json.loads((s.out_dir(store) / "scores.json").read_text()) for s in evals[-2:])
    drops = eval_gate(before, after, margin)
    if drops:
        log.warning("eval gate: stopping before the next round (%s > margin %.3f)", "; ".join(drops), margin)
    return not drops
