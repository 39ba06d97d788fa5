"""The shared vocabulary: fixed names, documented once each."""

from __future__ import annotations

import re
from pathlib import Path

from churnstream.features import FEATURE_NAMES
from churnstream.features.names import LOG_SCALED, RECENT_NAMES, RECENT_RAW, SEGMENT_FEATURES

DOC = Path(__file__).resolve().parents[3] / "docs" / "features.md"


def test_names_are_unique_and_start_with_the_contract_order() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert FEATURE_NAMES[:3] == ("tenure_days", "plan_price", "days_since_event")
    # Append-only: the vocabulary up to trend_active_days predates the normalised features,
    # and pending labels stored then must still line up with the names.
    assert FEATURE_NAMES.index("trend_active_days") == 57
    # The 3-day latencies came after the log companions, which keep their places.
    assert FEATURE_NAMES.index("log_processing_ms_max_7d") == 92
    assert FEATURE_NAMES[93:] == RECENT_NAMES


def test_models_learn_heavy_tailed_counts_through_their_log_companions() -> None:
    for name in LOG_SCALED:
        assert f"log_{name}" in FEATURE_NAMES
    for seg, names in SEGMENT_FEATURES.items():
        assert not {*LOG_SCALED, *RECENT_RAW} & set(names), seg
    assert "log_watch_minutes_7d" in SEGMENT_FEATURES["course"]
    assert "log_watch_minutes_7d" not in SEGMENT_FEATURES["saas"]
    assert "log_value_7d" in SEGMENT_FEATURES["saas"]
    assert {"history_days", "days_to_renewal"} <= set(SEGMENT_FEATURES["docs"])


def test_every_feature_has_one_doc_row_with_meaning_and_unit() -> None:
    rows = re.findall(r"^\| (\w+) \| (.+?) \| (.+?) \|$", DOC.read_text(), flags=re.M)
    documented = [name for name, _, _ in rows if name in FEATURE_NAMES]
    assert sorted(documented) == sorted(FEATURE_NAMES)
