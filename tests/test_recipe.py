"""The paper's recipe: the config draws categories/difficulties with the method's weights, and every row of
the recipe conformance table in docs/method.md holds in the composed ``experiment=codeqwen7b``."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from sca.config import Config, ConfigError
from sca.generate.fewshot import CATEGORIES, DIFFICULTIES
from sca.generate.instructions import draw, weights
from tests.test_config import composed

ROOT = Path(__file__).resolve().parent.parent
METHOD_DOC = ROOT / "docs" / "method.md"
PAPER = ("codeqwen7b", "starcoder2_15b", "qwen25coder7b")


def frequencies(params: dict[str, Any], key: str, allowed: tuple[str, ...], n: int = 30000) -> dict[str, float]:
    choices = weights(params[key], key, allowed)
    # The stage's own per-record RNG: one Random per record id, as batches.query_rng makes them.
    counts = Counter(draw(random.Random(f"0:{i:06d}:instructions"), choices) for i in range(n))
    return {name: counts[name] / n for name in allowed}


@pytest.mark.parametrize("name", PAPER)
def test_paper_configs_draw_the_methods_category_and_difficulty_mix(name: str) -> None:
    g = composed(f"experiment={name}").generate
    params = {"categories": g.categories, "difficulties": g.difficulties}
    cats = frequencies(params, "categories", CATEGORIES)
    assert cats == pytest.approx({"function": 0.5, "class": 0.25, "program": 0.25}, abs=0.01)
    diffs = frequencies(params, "difficulties", DIFFICULTIES)
    assert diffs == pytest.approx(dict.fromkeys(DIFFICULTIES, 1 / 3), abs=0.01)


def test_a_zero_weight_leaves_an_entry_out() -> None:
    g = composed("experiment=smollm2").generate
    assert frequencies({"categories": g.categories}, "categories", CATEGORIES, 2000) == {
        "function": 1.0,
        "class": 0.0,
        "program": 0.0,
    }
    diffs = frequencies({"difficulties": g.difficulties}, "difficulties", DIFFICULTIES, 4000)
    assert diffs["hard"] == 0.0 and diffs["easy"] == pytest.approx(0.5, abs=0.03)
    skewed = frequencies({"categories": {"function": 3, "class": 1}}, "categories", CATEGORIES, 8000)
    assert skewed == pytest.approx({"function": 0.75, "class": 0.25, "program": 0.0}, abs=0.02)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("generate.categories.class=-1", r"generate\.categories has negative weights \{'class': -1\.0\}"),
        ("+generate.categories.poem=1", r"generate\.categories has unknown entries \['poem'\]"),
        (
            "generate.difficulties={easy:0,medium:0,hard:0}",
            r"generate\.difficulties=.*must sum to more than 0",
        ),
        ("curate.augment_asserts_p=1.5", r"curate\.augment_asserts_p=1\.5 must be in \[0, 1\]"),
        ("curate.max_instruction_words=-1", r"curate\.max_instruction_words=-1"),
    ],
)
def test_bad_weights_and_curation_knobs_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        composed(override)


def test_a_weight_that_is_not_a_number_names_the_key() -> None:
    with pytest.raises(Exception, match=r"generate\.categories\.class"):
        composed("generate.categories.class=lots")


def test_the_stage_refuses_weights_it_cannot_draw_from() -> None:
    for bad in ({}, ["function"], {"function": -1.0}, {"function": 0.0}):
        with pytest.raises(ValueError, match="categories"):
            weights(bad, "categories", CATEGORIES)


# ---- the recipe conformance table --------------------------------------------------------------------------

COLUMNS = ["stage", "parameter", "method value", "config key", "value in codeqwen7b"]


def conformance_rows() -> list[dict[str, str]]:
    """The rows of the table under '## Recipe conformance' in docs/method.md."""
    text = METHOD_DOC.read_text(encoding="utf-8")
    section = text.split("## Recipe conformance", 1)[1].split("\n## ", 1)[0]
    lines = [ln.strip() for ln in section.splitlines() if ln.strip().startswith("|")]
    header = [c.strip().lower() for c in lines[0].strip("|").split("|")]
    assert header == COLUMNS, f"docs/method.md: the conformance table's columns must be {COLUMNS}"
    assert set(lines[1].replace("|", "").strip()) <= set("-: "), "the second line must be the separator"
    return [dict(zip(COLUMNS, (c.strip() for c in ln.strip("|").split("|")), strict=True)) for ln in lines[2:]]


def differences() -> str:
    text = METHOD_DOC.read_text(encoding="utf-8")
    return text.split("## What differs from the paper", 1)[1].split("\n## ", 1)[0]


def unquote(cell: str) -> Any:
    """The YAML value in a cell's leading backticks (text after them is a note): `1e-5` (own data) -> 1e-05."""
    m = re.match(r"`([^`]*)`", cell.strip())
    assert m, f"the cell {cell!r} must start with its value in backticks"
    value = yaml.safe_load(m.group(1))
    # YAML 1.1 reads 1e-5 (no dot) as a string; the config holds a float.
    return float(value) if isinstance(value, str) and re.fullmatch(r"[-+]?\d+(\.\d*)?e[-+]?\d+", value) else value


def lookup(cfg: Config, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


def test_the_conformance_table_is_there_and_covers_every_stage() -> None:
    rows = conformance_rows()
    assert len(rows) >= 30
    stages = {r["stage"] for r in rows}
    assert {"seeds", "S->C", "C->I", "I->R", "execution", "curation", "SFT", "eval"} <= stages
    keys = [r["config key"].strip("`") for r in rows]
    assert len(keys) == len(set(keys)), "a config key appears in two rows"


@pytest.fixture(scope="module")
def codeqwen7b() -> Config:
    return composed("experiment=codeqwen7b")


@pytest.mark.parametrize("row", conformance_rows(), ids=lambda r: r["config key"].strip("`"))
def test_every_row_of_the_conformance_table_holds_in_codeqwen7b(row: dict[str, str], codeqwen7b: Config) -> None:
    cfg = codeqwen7b
    key = row["config key"].strip("`")
    documented, actual = unquote(row["value in codeqwen7b"]), lookup(cfg, key)
    assert actual == documented, f"docs/method.md says {key} = {documented!r}, experiment=codeqwen7b has {actual!r}"
    method = unquote(row["method value"]) if row["method value"].startswith("`") else None
    if method is None or method != actual:
        # A value that is not the method's is explained in the differences section, by its key.
        assert f"`{key}`" in differences(), f"{key} differs from the method but 'What differs' does not name it"
