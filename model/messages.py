"""One-sentence alert messages for people, built from the top drivers (pure).

A small phrasebook turns a feature name and its raw value into a short phrase:
trends as "X down N% vs usual", ratios as percentages, log ratios as "N x as long",
per-minute rates as per hour and `days_since_*` as "no Y for N days".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from churnstream.model.playbook import Action, Driver

# Cap used by the features package for days_since_* ("never seen" is reported as the cap).
DAYS_SINCE_CAP: Final = 60.0

_TREND_NOUNS: Final = {
    "trend_logins": "logins",
    "trend_watch_minutes": "watch time",
    "trend_videos_started": "videos started",
    "trend_syncs": "syncs",
    "trend_value": "value delivered",
    "trend_jobs": "document jobs",
    "trend_active_days": "active days",
}
_DAYS_SINCE_NOUNS: Final = {
    "days_since_event": "activity",
    "days_since_login": "login",
    "days_since_video": "video watched",
    "days_since_sync": "sync",
    "days_since_ok_sync": "successful sync",
    "days_since_job": "document job",
    "days_since_value": "value recorded",
}
# Ratios: format with the percentage in place of {pct}.
_RATIO_PHRASES: Final = {
    "abandoned_ratio_7d": "{pct}% of videos abandoned early",
    "watched_fraction_7d": "only {pct}% of each video watched",
    "sync_error_ratio_7d": "{pct}% of syncs failing",
    "sync_error_ratio_28d": "{pct}% of syncs failing this month",
    "job_failure_ratio_7d": "{pct}% of document jobs failing",
    "job_failure_ratio_28d": "{pct}% of document jobs failing this month",
}
# Log ratios (ln of now against before): format with the ratio in place of {x}.
_LOG_RATIO_PHRASES: Final = {
    "processing_per_doc_3d_vs_before": "documents take {x}x as long as before",
}
_PER_MIN_NOUNS: Final = {
    "seeks_per_min_7d": "seeks",
    "rewinds_per_min_7d": "rewinds",
    "pauses_per_min_7d": "pauses",
}
_TEMPLATES: Final = {
    "failed_logins_7d": "{n} failed logins this week",
    "failed_logins_28d": "{n} failed logins this month",
    "active_days_7d": "active {n} of 7 days",
    "active_days_28d": "active {n} of 28 days",
    "sync_latency_ms_7d": "syncs take {n} ms",
    "processing_ms_mean_7d": "jobs take {s} s on average",
    "processing_ms_max_7d": "slowest job {s} s",
    "roi_7d": "ROI {x} this week",
    "roi_28d": "ROI {x} this month",
    "tenure_days": "customer for {n} days",
}


def phrase(feature: str, value: float) -> str:
    """Short human phrase for one feature value, e.g. ("trend_logins", 0.3) -> "logins down 70%
    vs usual". Unknown features fall back to "name value"."""
    if feature in _TREND_NOUNS:
        return _trend_phrase(_TREND_NOUNS[feature], value)
    if feature in _DAYS_SINCE_NOUNS:
        noun = _DAYS_SINCE_NOUNS[feature]
        if value >= DAYS_SINCE_CAP:
            return f"no {noun} for {DAYS_SINCE_CAP:.0f}+ days"
        days = round(value)
        return f"no {noun} for {days} day{'' if days == 1 else 's'}"
    if feature in _RATIO_PHRASES:
        return _RATIO_PHRASES[feature].format(pct=round(value * 100))
    if feature in _LOG_RATIO_PHRASES:
        return _LOG_RATIO_PHRASES[feature].format(x=f"{math.exp(value):.1f}")
    if feature in _PER_MIN_NOUNS:
        return f"{round(value * 60)} {_PER_MIN_NOUNS[feature]} per hour"
    if feature in _TEMPLATES:
        return _TEMPLATES[feature].format(n=round(value), s=f"{value / 1000:.1f}", x=f"{value:.2f}")
    return f"{feature.replace('_', ' ')} {value:g}"


def _trend_phrase(noun: str, ratio: float) -> str:
    change = round((ratio - 1.0) * 100)
    if change < 0:
        return f"{noun} down {-change}% vs usual"
    if change > 0:
        return f"{noun} up {change}% vs usual"
    return f"{noun} as usual"


def compose_message(
    kind: str,
    severity: str,
    value: float,
    threshold: float,
    drivers: Sequence[Driver],
    action: Action,
) -> str:
    """One sentence: headline, top driver phrases, suggested action.

    Example: "Risk 0.82 (critical): watch time down 70% vs usual, 14 rewinds per hour;
    suggest: mentor match".
    """
    if kind == "roi_drop":
        head = f"ROI {value:.2f} ({severity}, below {threshold:.2f})"
    else:
        head = f"Risk {value:.2f} ({severity})"
    # The ROI headline already states the ROI, so do not repeat it as a driver phrase.
    reasons = [
        phrase(d.feature, d.value)
        for d in drivers
        if not (kind == "roi_drop" and d.feature == "roi_7d")
    ]
    body = f": {', '.join(reasons)}" if reasons else ""
    return f"{head}{body}; suggest: {action.label}"
