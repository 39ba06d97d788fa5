"""Phrasebook and one-sentence alert messages."""

from __future__ import annotations

import pytest

from churnstream.model.alerts import Action, Driver, compose_message, phrase


@pytest.mark.parametrize(
    ("feature", "value", "text"),
    [
        ("trend_watch_minutes", 0.3, "watch time down 70% vs usual"),
        ("trend_logins", 1.5, "logins up 50% vs usual"),
        ("trend_syncs", 1.0, "syncs as usual"),
        ("abandoned_ratio_7d", 0.42, "42% of videos abandoned early"),
        ("sync_error_ratio_7d", 0.25, "25% of syncs failing"),
        ("rewinds_per_min_7d", 0.2333, "14 rewinds per hour"),
        ("seeks_per_min_7d", 1.0, "60 seeks per hour"),
        ("days_since_login", 12.0, "no login for 12 days"),
        ("days_since_video", 1.0, "no video watched for 1 day"),
        ("days_since_event", 60.0, "no activity for 60+ days"),
        ("failed_logins_7d", 6.0, "6 failed logins this week"),
        ("processing_ms_mean_7d", 12500.0, "jobs take 12.5 s on average"),
        ("processing_per_doc_3d_vs_before", 0.9163, "documents take 2.5x as long as before"),
        ("brand_new_feature", 3.5, "brand new feature 3.5"),
    ],
)
def test_phrases(feature: str, value: float, text: str) -> None:
    assert phrase(feature, value) == text


def test_risk_message_sentence() -> None:
    drivers = [Driver("trend_watch_minutes", 0.3, 1.2), Driver("rewinds_per_min_7d", 0.2333, 0.7)]
    text = compose_message(
        "churn_risk", "critical", 0.8249, 0.75, drivers, Action("mentor_match", "Offer a mentor.")
    )
    assert text == (
        "Risk 0.82 (critical): watch time down 70% vs usual, 14 rewinds per hour; "
        "suggest: mentor match"
    )


def test_message_without_drivers() -> None:
    text = compose_message("churn_risk", "warning", 0.5, 0.5, [], Action("check_in", "x"))
    assert text == "Risk 0.50 (warning); suggest: check in"
