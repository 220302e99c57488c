"""MinHash near-dedup and the code skeleton."""

from __future__ import annotations

import pytest

from sca.curate.dedup import code_skeleton, find_near_duplicates, near_dedup, shingles

BASE = "write a function that returns the sum of the squares of the even numbers in a list of integers"


def test_near_duplicate_dropped_distinct_kept_first_wins() -> None:
    texts = [
        "an unrelated task about parsing dates from log files and counting them per day of the week",
        BASE,
        BASE + " please",  # near duplicate of index 1
        "implement a class for a bank account with deposit and withdraw and a balance history method",
    ]
    kept, dups = find_near_duplicates(texts, threshold=0.7, num_perm=128, ngram=3)
    assert kept == [0, 1, 3]
    assert dups == {2: 1}
    assert near_dedup(texts, 0.7, 128, 3) == kept


def test_below_threshold_is_kept() -> None:
    other = "write a function that returns the product of the cubes of the odd numbers in a tuple of floats"
    assert near_dedup([BASE, other], threshold=0.7, num_perm=128, ngram=3) == [0, 1]


def test_deterministic_and_empty_texts_kept() -> None:
    texts = [BASE, "", "!!!", BASE.upper(), BASE]
    first = find_near_duplicates(texts, 0.7, 64, 5, seed=3)
    assert first == find_near_duplicates(texts, 0.7, 64, 5, seed=3)
    assert first[0] == [0, 1, 2]  # case and punctuation do not matter; empty texts are kept


def test_shingles_short_text_is_one_shingle() -> None:
    assert shingles("Hello, world!", 5) == {b"hello world"}
    assert len(shingles(BASE, 5)) == len(BASE.split()) - 4


@pytest.mark.parametrize(("threshold", "num_perm"), [(0.0, 64), (1.5, 64), (0.5, 1)])
def test_bad_parameters_fail(threshold: float, num_perm: int) -> None:
    with pytest.raises(ValueError, match="dedup"):
        near_dedup([BASE], threshold, num_perm, 5)


def test_code_skeleton_strips_docs_comments_and_demo_code() -> None:
    a = '''
import math

def hyp(a, b):
    """Hypotenuse."""
    # Pythagoras
    return math.sqrt(a * a + b * b)

class Point:
    """A point."""
    def norm(self):
        """Length."""
        return hyp(self.x, self.y)

print(hyp(3, 4))
'''
    b = "def hyp(a, b):\n    return math.sqrt(a * a + b * b)\nclass Point:\n    def norm(self):\n        return hyp(self.x, self.y)\nassert hyp(3, 4) == 5\n"
    assert code_skeleton(a) == code_skeleton(b)
    assert "Hypotenuse" not in code_skeleton(a) and "print" not in code_skeleton(a)
    with pytest.raises(SyntaxError):
        code_skeleton("def f(:")
