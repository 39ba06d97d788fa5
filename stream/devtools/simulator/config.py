"""What to simulate: the typed configuration of the customer simulator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from churnstream.stream.contract.events import SEGMENTS
from churnstream.stream.contract.topics import INPUT_TOPICS

# 2026-01-05T00:00:00Z, a Monday: day index d is a weekend when d % 7 in (5, 6).
DEFAULT_START: Final = 1_767_571_200

# Contract topic names, by what the simulator emits on them.
VIDEO_VIEWS: Final = INPUT_TOPICS["video_views"]
LOGINS: Final = INPUT_TOPICS["logins"]
SYNCS: Final = INPUT_TOPICS["integration_syncs"]
DOC_JOBS: Final = INPUT_TOPICS["document_jobs"]
VALUE: Final = INPUT_TOPICS["value"]
LIFECYCLE: Final = INPUT_TOPICS["subscriptions"]
# What counts as a user's activity (not value reports, not lifecycle events).
BEHAVIOUR_TOPICS: Final = frozenset((VIDEO_VIEWS, LOGINS, SYNCS, DOC_JOBS))

# Contract default churn horizons, in days.
HORIZON_DAYS: Final[dict[str, int]] = {"course": 7, "saas": 14, "docs": 14}

# What counts as churn when judging a prediction (see truth.churned_within): a lifecycle cancel,
# going quiet for good, or either. Learners rarely cancel, they stop; accounts cancel. The
# product's `quiet` label names the same truth as `either` (its last activity before leaving).
LABEL_MODES: Final = ("cancel", "inactivity", "either", "quiet")
DEFAULT_LABEL_MODE: Final[dict[str, str]] = {"course": "either", "saas": "cancel", "docs": "cancel"}


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Parameters of one simulated history; the same config always yields the same records."""

    users: int = 1000
    """Number of customers (learners, accounts or workspaces)."""
    days: int = 60
    """Length of the simulated period in days of event time."""
    seed: int = 0
    """Seed of every random choice."""
    churn_rate: float = 0.25
    """Approximate fraction of users that churn (cancel or drop out) within the period."""
    course_silent_share: float = 0.7
    """Share of course churners that stop coming without cancelling (silent dropouts)."""
    silent_share: float = 0.1
    """Share of SaaS and docs churners that stop without cancelling."""
    segments: tuple[str, ...] = SEGMENTS
    """Businesses to simulate; users are spread over them."""
    start: float = DEFAULT_START
    """Event-time origin in epoch seconds (day 0 starts here, UTC)."""
    bad_fraction: float = 0.0
    """Share of extra records that are invalid, unkeyed or duplicate deliveries."""
    roi_drop_fraction: float = 0.1
    """Share of SaaS accounts whose delivered value drops suddenly (churning or not)."""
    treatments: tuple[tuple[str, int, float], ...] = ()
    """Interventions that work: (user_id, day, factor) multiplies the user's daily churn
    probability by `factor` from `day` on (0.7 = the hazard falls by 30%). The draws are the
    same as without it, so a treated user churns later or not at all, never sooner, and every
    other user is unchanged: the untreated history is the counterfactual."""

    def __post_init__(self) -> None:
        if self.users < 1 or self.days < 1:
            raise ValueError("users and days must be >= 1")
        if not self.segments or any(s not in SEGMENTS for s in self.segments):
            raise ValueError(f"segments must be a non-empty subset of {SEGMENTS}")
        for name in (
            "churn_rate",
            "course_silent_share",
            "silent_share",
            "bad_fraction",
            "roi_drop_fraction",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if any(not 0.0 <= factor <= 1.0 for _, _, factor in self.treatments):
            raise ValueError("treatment factors must be within [0, 1]")
