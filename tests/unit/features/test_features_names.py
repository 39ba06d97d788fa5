"""The shared vocabulary: fixed names, documented once each."""

from __future__ import annotations

import re
from pathlib import Path

from churnstream.features import FEATURE_NAMES

DOC = Path(__file__).resolve().parents[3] / "docs" / "features.md"


def test_names_are_unique_and_start_with_the_contract_order() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert FEATURE_NAMES[:3] == ("tenure_days", "plan_price", "days_since_event")
    assert FEATURE_NAMES[-1] == "trend_active_days"


def test_every_feature_has_one_doc_row_with_meaning_and_unit() -> None:
    rows = re.findall(r"^\| (\w+) \| (.+?) \| (.+?) \|$", DOC.read_text(), flags=re.M)
    documented = [name for name, _, _ in rows if name in FEATURE_NAMES]
    assert sorted(documented) == sorted(FEATURE_NAMES)
