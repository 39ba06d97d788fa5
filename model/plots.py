"""The numbers behind the replay's visual report: pure, from what the replay already measured.

Per segment, from the labelled examples the replay scored before their label existed (the
`published` quality window of `model.replay`, at most its last 20,000 examples):

- calibration: equal-width score bins, mean score against the observed churn rate
  (`model.quality.calibration_bins`);
- gain and lift: users ranked by score, the share of churners found in the top k% and how many
  times the base rate that is;
- score distributions of churners and of the others (histograms of shares).

And, for the whole history: the lead time of churn_risk alerts before a cancel (days, per
segment, as `model.replay` measures it) and the alerts per event-time day, by kind and severity.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any, Final

from churnstream.model.quality import calibration_bins
from churnstream.model.replay import Replay

SCORE_BINS: Final = 20
GAIN_POINTS: Final = 20
LEAD_BIN_DAYS: Final = 1.0


def gain_curve(
    scores: Sequence[float], labels: Sequence[bool], points: int = GAIN_POINTS
) -> list[dict[str, float]]:
    """Cumulative gain and lift at `points` equal steps of the population ranked by score.

    Ties are broken by input order (stable sort), so equal scores do not favour either class.
    Empty when there is no positive.
    """
    positives = sum(labels)
    n = len(scores)
    if not n or not positives:
        return []
    order = sorted(range(n), key=lambda i: -scores[i])
    out: list[dict[str, float]] = []
    found = taken = 0
    for step in range(1, points + 1):
        upto = round(n * step / points)
        while taken < upto:
            found += labels[order[taken]]
            taken += 1
        share = taken / n
        gain = found / positives
        out.append({"population": share, "gain": gain, "lift": gain / share if share else 0.0})
    return out


def histogram(values: Iterable[float], bins: int = SCORE_BINS) -> list[float]:
    """Shares of `values` (in [0, 1]) in `bins` equal-width bins; all 0 when there is none."""
    counts = [0] * bins
    for v in values:
        counts[min(max(int(v * bins), 0), bins - 1)] += 1
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def lead_histogram(days: Sequence[float], width: float = LEAD_BIN_DAYS) -> list[dict[str, float]]:
    """Counts of lead times in bins of `width` days from 0 to the longest one."""
    if not days:
        return []
    top = int(max(days) // width) + 1
    counts = Counter(min(int(d // width), top - 1) for d in days if d >= 0)
    return [{"lo": b * width, "hi": (b + 1) * width, "n": counts.get(b, 0)} for b in range(top)]


def segment_plots(
    scores: Sequence[float], labels: Sequence[bool], lead_days: Sequence[float]
) -> dict[str, Any]:
    """Every plot's numbers of one segment."""
    positives = [s for s, y in zip(scores, labels, strict=True) if y]
    negatives = [s for s, y in zip(scores, labels, strict=True) if not y]
    return {
        "examples": len(scores),
        "positives": len(positives),
        "calibration": calibration_bins(scores, labels, 10),
        "gain": gain_curve(scores, labels),
        "score_histogram": {
            "bins": SCORE_BINS,
            "churned": histogram(positives),
            "stayed": histogram(negatives),
        },
        "lead_days": {
            "n": len(lead_days),
            "median": statistics.median(lead_days) if lead_days else None,
            "histogram": lead_histogram(lead_days),
        },
    }


def alerts_per_day(alerts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Alerts by event-time day (the alert's `ts`, UTC date) and `kind/severity`, every day from
    the first alert's to the last's (days without alerts count 0)."""
    by_day: dict[date, Counter[str]] = {}
    for alert in alerts:
        day = date.fromisoformat(str(alert["ts"])[:10])
        by_day.setdefault(day, Counter())[f"{alert['kind']}/{alert['severity']}"] += 1
    if not by_day:
        return []
    first, last = min(by_day), max(by_day)
    days = (first + timedelta(days=i) for i in range((last - first).days + 1))
    return [{"day": d.isoformat(), "counts": dict(by_day.get(d, Counter()))} for d in days]


def replay_plots(replay: Replay, alerts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Every plot's numbers of a finished replay; `alerts` are the alerts it published."""
    segments = {}
    for name, seg in replay.segments.items():
        scores, labels = seg.published.recent()
        if scores or seg.lead_days:
            segments[name] = segment_plots(scores, labels, seg.lead_days)
    return {"segments": segments, "alerts_per_day": alerts_per_day(alerts)}
