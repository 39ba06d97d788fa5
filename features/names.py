"""Feature names: the shared vocabulary, in the fixed order of `UserState.vector`."""

from __future__ import annotations

from typing import Final

_NAMES: Final[tuple[str, ...]] = (
    "tenure_days",
    "plan_price",
    "days_since_event",
    "days_since_login",
    "days_since_video",
    "days_since_sync",
    "days_since_ok_sync",
    "days_since_job",
    "days_since_value",
    "logins_1d",
    "logins_7d",
    "logins_28d",
    "failed_logins_7d",
    "failed_logins_28d",
    "active_days_7d",
    "active_days_28d",
    "videos_started_7d",
    "videos_started_28d",
    "videos_completed_7d",
    "videos_completed_28d",
    "watch_minutes_1d",
    "watch_minutes_7d",
    "watch_minutes_28d",
    "watched_fraction_7d",
    "abandoned_7d",
    "abandoned_ratio_7d",
    "seeks_per_min_7d",
    "rewinds_per_min_7d",
    "pauses_per_min_7d",
    "distinct_videos_7d",
    "distinct_videos_28d",
    "syncs_7d",
    "syncs_28d",
    "sync_error_ratio_7d",
    "sync_error_ratio_28d",
    "distinct_integrations_28d",
    "sync_latency_ms_7d",
    "value_7d",
    "value_28d",
    "cost_7d",
    "cost_28d",
    "roi_7d",
    "roi_28d",
    "value_events_28d",
    "jobs_7d",
    "jobs_28d",
    "documents_7d",
    "job_failure_ratio_7d",
    "job_failure_ratio_28d",
    "processing_ms_mean_7d",
    "processing_ms_max_7d",
    "trend_logins",
    "trend_watch_minutes",
    "trend_videos_started",
    "trend_syncs",
    "trend_value",
    "trend_jobs",
    "trend_active_days",
    # Appended, never inserted: rows stored before (pending labels) keep their alignment.
    "history_days",
    "days_to_renewal",
    "renewal_known",
    "roi_known",
    "watched_fraction_28d",
    "abandoned_ratio_28d",
    "seeks_per_min_28d",
    "rewinds_per_min_28d",
    "pauses_per_min_28d",
    "sync_latency_ms_28d",
    "processing_ms_mean_28d",
)

# Heavy-tailed counts and amounts: each gets a `log_<name>` companion, sign-preserving
# log1p, appended in this order. The raw value stays for people (read API, messages, ROI);
# the models learn from the companion (`SEGMENT_FEATURES`), where one power user would
# otherwise set the scale of a standardised input.
LOG_SCALED: Final[tuple[str, ...]] = (
    "logins_1d",
    "logins_7d",
    "logins_28d",
    "failed_logins_7d",
    "failed_logins_28d",
    "videos_started_7d",
    "videos_started_28d",
    "videos_completed_7d",
    "videos_completed_28d",
    "watch_minutes_1d",
    "watch_minutes_7d",
    "watch_minutes_28d",
    "abandoned_7d",
    "syncs_7d",
    "syncs_28d",
    "sync_latency_ms_7d",
    "value_7d",
    "value_28d",
    "value_events_28d",
    "jobs_7d",
    "jobs_28d",
    "documents_7d",
    "processing_ms_mean_7d",
    "processing_ms_max_7d",
)
# Appended after the companions (issue 14), for the same reason: the processing time per
# document of the last 3 days, raw (for people), then against the days before (what docs
# models learn; docs/model.md "Recent processing time per document").
RECENT_RAW: Final[tuple[str, ...]] = ("processing_ms_per_doc_3d",)
RECENT_NAMES: Final[tuple[str, ...]] = (*RECENT_RAW, "processing_per_doc_3d_vs_before")
FEATURE_NAMES: Final[tuple[str, ...]] = (
    *_NAMES,
    *(f"log_{n}" for n in LOG_SCALED),
    *RECENT_NAMES,
)
# Where each companion's source sits in the vector before the companions are appended.
LOG_SOURCES: Final[tuple[int, ...]] = tuple(_NAMES.index(n) for n in LOG_SCALED)

# Caps and neutral values shared by the derivation and the docs.
DAYS_SINCE_CAP: Final = 60.0
ROI_CAP: Final = 10.0
TREND_CAP: Final = 4.0
HISTORY_CAP: Final = 28.0  # the longest window: beyond it more history changes no window
RENEWAL_CYCLE_DAYS: Final = 30.0  # contract: plan_price is per 30 days
# Stand-ins for values that are unknown (their `*_known` flag is 0): the neutral middle, so an
# unknown is never read as an extreme. ROI 1.0 is break-even, the rules' healthy center.
ROI_UNKNOWN: Final = 1.0
RENEWAL_UNKNOWN: Final = RENEWAL_CYCLE_DAYS / 2.0


def _segment_features() -> dict[str, tuple[str, ...]]:
    """Features each segment's model learns from: shared activity plus its own signals.

    A course model given document-job features learns proxies (a learner's
    `days_since_job` is just its tenure) and explains scores with them.
    """
    course = ("video", "watch", "abandon", "seeks", "rewinds", "pauses")
    money = ("value", "cost", "roi")
    saas = ("sync", "integration", *money)
    docs = ("job", "documents", "processing", *money)
    own = {"course": course, "saas": saas, "docs": docs}
    every = {p for parts in own.values() for p in parts}

    def shared(name: str) -> bool:
        return not any(p in name for p in every)

    # Learned only through a companion: their log, or (RECENT_RAW) the ratio to the days before.
    raw = {*LOG_SCALED, *RECENT_RAW}
    return {
        seg: tuple(
            n for n in FEATURE_NAMES if n not in raw and (shared(n) or any(p in n for p in parts))
        )
        for seg, parts in own.items()
    }


SEGMENT_FEATURES: Final[dict[str, tuple[str, ...]]] = _segment_features()
