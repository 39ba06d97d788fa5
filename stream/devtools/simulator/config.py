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

# Contract default churn horizons, in days.
HORIZON_DAYS: Final[dict[str, int]] = {"course": 7, "saas": 14, "docs": 14}


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
    """Approximate fraction of users that cancel within the period."""
    segments: tuple[str, ...] = SEGMENTS
    """Businesses to simulate; users are spread over them."""
    start: float = DEFAULT_START
    """Event-time origin in epoch seconds (day 0 starts here, UTC)."""
    bad_fraction: float = 0.0
    """Share of extra records that are invalid, unkeyed or duplicate deliveries."""
    roi_drop_fraction: float = 0.1
    """Share of SaaS accounts whose delivered value drops suddenly (churning or not)."""

    def __post_init__(self) -> None:
        if self.users < 1 or self.days < 1:
            raise ValueError("users and days must be >= 1")
        if not self.segments or any(s not in SEGMENTS for s in self.segments):
            raise ValueError(f"segments must be a non-empty subset of {SEGMENTS}")
        for name in ("churn_rate", "bad_fraction", "roi_drop_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
