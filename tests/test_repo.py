"""The repository stands alone: its code, comments and docs name no document that lives outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Design notes the project was written from; users never get them, so nothing may point at them.
OUTSIDE = re.compile(r"\b(METHOD|SANDBOX|ENVIRONMENT|ARCHITECTURE)\.md\b|\bMETHOD \d|shared/docs")


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / p for p in out.splitlines() if (ROOT / p).is_file()]


def test_no_file_points_to_documents_outside_the_repository() -> None:
    hits = []
    for path in tracked_files():
        if path.suffix not in {".py", ".md", ".yaml", ".yml", ".txt", ".sh", ".toml", ".json", ".sbatch"}:
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line) and path.name != "test_repo.py":
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert hits == [], "point to docs/ inside the repository instead:\n" + "\n".join(hits)


def test_the_check_sees_an_outside_reference() -> None:
    assert OUTSIDE.search("loss on the response only (METHOD.md 6.1)")
    assert OUTSIDE.search("# greedy Yes/No (METHOD 1.3)")
    assert not OUTSIDE.search("see docs/method.md, the seed judge")
