"""The one instant formatter: RFC 3339 UTC with milliseconds, shared by every output record."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from churnstream.stream.contract.timefmt import rfc3339
from churnstream.stream.contract.validation import parse_ts

T0 = 1_772_366_400.0  # 2026-03-01T12:00:00Z


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (T0, "2026-03-01T12:00:00.000Z"),  # whole seconds keep their fraction digits
        (T0 + 0.25, "2026-03-01T12:00:00.250Z"),
        (T0 + 0.9999, "2026-03-01T12:00:00.999Z"),  # truncated, never rounded into the next second
        (0.0, "1970-01-01T00:00:00.000Z"),
    ],
)
def test_rfc3339_utc_milliseconds(seconds: float, text: str) -> None:
    assert rfc3339(seconds) == text


@given(st.integers(min_value=946_684_800_000, max_value=4_102_444_799_999))
def test_rfc3339_round_trips_through_the_contract_parser(ms: int) -> None:
    text = rfc3339(ms / 1000)
    assert len(text) == 24 and text.endswith("Z")
    assert parse_ts(text) == pytest.approx(ms / 1000, abs=1e-6)
    assert datetime.fromisoformat(text).timestamp() == pytest.approx(ms / 1000, abs=1e-6)
