"""Playbook loading, validation and action selection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from churnstream.model.alerts import Driver, Playbook, PlaybookError

SMALL: dict[str, Any] = {
    "actions": {
        "global": {"text": "G"},
        "seg_default": {"text": "S"},
        "mentor": {"text": "M"},
        "easier": {"text": "E"},
        "roi": {"text": "R"},
    },
    "default": "global",
    "kinds": {"roi_drop": "roi"},
    "features": {"rewinds_per_min_7d": "mentor"},
    "segments": {
        "course": {"default": "seg_default", "features": {"rewinds_per_min_7d": "easier"}}
    },
}


def lead(feature: str) -> list[Driver]:
    return [Driver(feature, 1.0, 1.0), Driver("rewinds_per_min_7d", 1.0, 0.5)]


def test_segment_specific_rule_beats_global() -> None:
    book = Playbook(SMALL)
    assert book.choose("course", lead("rewinds_per_min_7d"), "churn_risk").code == "easier"
    assert book.choose("saas", lead("rewinds_per_min_7d"), "churn_risk").code == "mentor"


def test_unknown_feature_falls_back_to_segment_then_global_default() -> None:
    book = Playbook(SMALL)
    # Only the leading driver is used, even if a later one has a rule.
    assert book.choose("course", lead("mystery"), "churn_risk").code == "seg_default"
    assert book.choose("docs", lead("mystery"), "churn_risk").code == "global"
    assert book.choose(None, [], "churn_risk").code == "global"


def test_kind_default_applies_before_segment_default() -> None:
    book = Playbook(SMALL)
    assert book.choose("course", lead("mystery"), "roi_drop").code == "roi"
    assert book.choose("course", lead("rewinds_per_min_7d"), "roi_drop").code == "easier"


def test_packaged_default_loads_and_covers_the_brief() -> None:
    book = Playbook.load()
    expect = {
        "abandoned_ratio_7d": "easier_content",
        "rewinds_per_min_7d": "mentor_match",
        "days_since_event": "reengagement_nudge",
        "failed_logins_7d": "account_access_help",
        "sync_error_ratio_7d": "integration_support_call",
        "roi_7d": "roi_review",
        "job_failure_ratio_7d": "technical_follow_up",
    }
    for feature, code in expect.items():
        assert book.choose("saas", lead(feature), "churn_risk").code == code, feature
    assert book.choose("course", lead("days_since_event"), "churn_risk").code == (
        "course_reengagement"
    )
    assert book.choose("docs", lead("mystery"), "churn_risk").code == "technical_follow_up"
    assert all(a.text for a in book.actions.values())


def test_load_from_path(tmp_path: Path) -> None:
    path = tmp_path / "pb.json"
    path.write_text(json.dumps(SMALL))
    assert Playbook.load(path).choose("course", [], "churn_risk").code == "seg_default"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("default"), "'default'"),
        (lambda d: d.update(actions={}), "'actions'"),
        (lambda d: d["actions"].update(bad={"text": ""}), "actions.bad"),
        (lambda d: d["features"].update(x="nope"), "features.x: 'nope'"),
        (lambda d: d["kinds"].update(churn="roi"), "unknown alert kind"),
        (lambda d: d["segments"]["course"].update(default="nope"), "segments.course.default"),
        (lambda d: d.update(extra=1), "unknown key"),
    ],
)
def test_validation_errors_name_the_problem(mutate: Any, message: str) -> None:
    data = json.loads(json.dumps(SMALL))
    mutate(data)
    with pytest.raises(PlaybookError, match=message):
        Playbook(data)


def test_invalid_json_file(tmp_path: Path) -> None:
    path = tmp_path / "pb.json"
    path.write_text("{not json")
    with pytest.raises(PlaybookError, match=r"pb\.json: not valid JSON"):
        Playbook.load(path)
