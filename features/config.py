"""Configuration of the per-user feature state."""

from __future__ import annotations

from dataclasses import dataclass

from churnstream.features.buckets import RING_DAYS


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """Tunables of `UserState`.

    `lateness_s`: how far behind the user's clock an event may be and still count as on time.
    `ring_days`: size of the day ring; fixed by the feature set (28-day windows, see
    `features.buckets.AHEAD_DAYS`).
    `dedupe_slots`: how many recent event-id hashes are remembered per user.
    """

    lateness_s: float = 86400.0
    ring_days: int = RING_DAYS
    dedupe_slots: int = 64

    def __post_init__(self) -> None:
        if self.ring_days != RING_DAYS:
            raise ValueError(f"ring_days is fixed at {RING_DAYS} by the feature set")
        if self.lateness_s < 0:
            raise ValueError("lateness_s must be >= 0")
        if not 1 <= self.dedupe_slots <= 4096:
            raise ValueError("dedupe_slots must be in [1, 4096]")
