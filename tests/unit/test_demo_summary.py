"""The demo's closing summary judges alerts like the replay report: within the horizon, by label
mode, silent dropouts counted as churners."""

from __future__ import annotations

import pytest

from churnstream.stream.cli.commands.demo import _summary
from churnstream.stream.contract.timefmt import rfc3339
from churnstream.stream.devtools.simulator.truth import GroundTruth, UserTruth

DAY = 86400.0
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def user(segment: str, kind: str | None, churn_day: float | None) -> UserTruth:
    churn = None if churn_day is None else START + churn_day * DAY
    return UserTruth(
        segment=segment,
        utc_offset_h=0.0,
        signup_ts=START,
        churn_kind=kind,
        churn_ts=churn,
        last_active_ts=churn,
        decline_start_ts=None,
        cancel_ts=churn if kind == "cancel" else None,
        reactivate_ts=None,
        warning_start_ts=None,
        roi_drop_ts=None,
        silent=False,
        oracle=[],
    )


def alert(user_id: str, day: float) -> dict[str, object]:
    return {"kind": "churn_risk", "user_id": user_id, "ts": rfc3339(START + day * DAY)}


def test_summary_counts_silent_dropouts_and_judges_within_the_horizon(
    capsys: pytest.CaptureFixture[str],
) -> None:
    truth = GroundTruth(start=START, days=60, horizon_days={"course": 7, "saas": 14, "docs": 14})
    truth.users = {
        "quiet": user("course", "silent", 20.0),  # stops without cancelling (course: either)
        "late": user("course", "cancel", 40.0),  # cancels 10 days after its alert: outside 7
        "saas-silent": user("saas", "silent", 30.0),  # saas labels are cancel-only
        "stays": user("course", None, None),
    }
    alerts = [alert("quiet", 18.0), alert("late", 30.0), alert("saas-silent", 25.0)]
    _summary(alerts, truth, sent=None, port=1)
    out = capsys.readouterr().out
    assert "followed by churn within the segment's horizon: 1/3 (33%)" in out
    assert "churners in the simulation: 2 (1 stopped without cancelling)" in out
    assert "alerted before churning: 2" in out
    assert "median lead time: 6.0 days before the churn" in out
    assert "silent dropouts alerted by 3 days after their last activity: 1/1" in out
