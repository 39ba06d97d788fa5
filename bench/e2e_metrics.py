"""Reading a worker's Prometheus `/metrics` (127.0.0.1) and quantiles from histogram buckets."""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, Mapping[str, str], float]


@dataclass(frozen=True, slots=True)
class Scrape:
    """One scrape of `/metrics`: every sample as (name, labels, value)."""

    samples: tuple[Sample, ...]

    def total(self, name: str, **match: str) -> float:
        """Sum of samples called `name` whose labels include `match`."""
        return sum(
            value
            for sample, labels, value in self.samples
            if sample == name and all(labels.get(k) == v for k, v in match.items())
        )

    def sum_where(self, name: str, label: str, allowed: Iterable[str]) -> float:
        """Sum of samples called `name` whose `label` is one of `allowed`."""
        keep = set(allowed)
        return sum(v for s, labels, v in self.samples if s == name and labels.get(label) in keep)

    def buckets(self, histogram: str) -> list[tuple[float, float]]:
        """Cumulative (upper bound, count) pairs of an unlabelled histogram, sorted."""
        pairs = [
            (float(labels["le"]), value)
            for name, labels, value in self.samples
            if name == f"{histogram}_bucket"
        ]
        return sorted(pairs)


def scrape(port: int, timeout: float = 5.0) -> Scrape:
    """GET http://127.0.0.1:`port`/metrics and parse it."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode()
    samples = tuple(
        (s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    )
    return Scrape(samples)


def bucket_delta(
    after: list[tuple[float, float]], before: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Buckets of the observations made between two scrapes."""
    old = dict(before)
    return [(le, count - old.get(le, 0.0)) for le, count in after]


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' `histogram_quantile`: linear interpolation inside the bucket holding q.

    Returns None without observations; the highest finite bound if q falls in +Inf.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def share_at_most(bound: float, buckets: list[tuple[float, float]]) -> float | None:
    """Fraction of observations <= `bound`, exact when `bound` is a bucket boundary."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    below = [count for le, count in buckets if le <= bound]
    return (below[-1] if below else 0.0) / buckets[-1][1]
