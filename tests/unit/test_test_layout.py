"""The test tree itself: pytest imports test modules by basename (rootdir-relative, no packages),
so two test files of the same name in different folders break collection of the whole suite."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_modules_have_unique_basenames() -> None:
    names = Counter(
        p.name for p in TESTS.rglob("*.py") if p.name not in ("__init__.py", "conftest.py")
    )
    assert [n for n, k in names.items() if k > 1] == []
