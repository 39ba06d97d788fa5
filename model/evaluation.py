"""Honest evaluation against what really happened: daily predictions and churn_risk alerts.

The replay's own numbers come from the file alone (prequential AUC on delayed labels, alerted
users who later cancelled) and flatter the model (docs/replay.md). Given the truth of every
user's churn (the simulator writes it beside its history), this module judges:

- every published daily row, not a tail: ROC AUC against churn within the segment's horizon
  per its label mode, the same by lead time (rows made 0-2, 2-7, 7+ days before the churn,
  each against all negative rows), and the truth's oracle on the very same rows;
- churn_risk alerts: precision within the horizon, recall among all churners (those who gave
  no warning included), lead before the churn, and for silent dropouts the delay between their
  last activity and the first alert.

Rows made when the truth says the user is not at risk (already churned, not back) are left out
of the AUCs; rows and alerts whose horizon passes the end of the history are left out too (their
outcome is unknown). Pure: the truth comes through the `Truth` protocol
(`churnstream.stream.devtools.simulator.judge` adapts the simulator's ground truth).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from churnstream.model.quality import exact_roc_auc
from churnstream.stream.contract.events import DAY_S

# Lead-time buckets of positive rows, in days before the churn: [lo, hi).
LEAD_BUCKETS: Final = ((0.0, 2.0), (2.0, 7.0), (7.0, float("inf")))
SILENT_PROMPT_DAYS: Final = 3.0  # a silent dropout is alerted in time within this many days
COLD_START_DAYS: Final = 14.0  # the first days of a deployment (of the history)
STEADY_FROM_DAYS: Final = 42.0  # 28-day windows full and the model trained on two weeks more


@dataclass(frozen=True, slots=True)
class Churn:
    """One user's churn as the truth knows it."""

    user_id: str
    segment: str
    kind: str  # "cancel" or "silent" (stopped without cancelling)
    ts: float  # the cancel, or a silent dropout's last activity
    warned: bool  # a decline was visible before it
    returned_ts: float | None  # when the user came back, if they did


class Truth(Protocol):
    """What happened to every user of a history (epoch seconds)."""

    start: float
    end: float

    def churns(self) -> Iterable[Churn]: ...
    def churn_of(self, user_id: str) -> Churn | None: ...
    def at_risk(self, user_id: str, t: float) -> bool: ...
    def churned_within(self, user_id: str, t: float, horizon_s: float, mode: str) -> bool: ...
    def oracle(self, user_id: str, t: float) -> float | None: ...


def counts(churn: Churn, mode: str) -> bool:
    """Whether `churn` is churn under label `mode` (a silent dropout is not a cancel)."""
    return mode != "cancel" or churn.kind == "cancel"


def alert_hit(truth: Truth, user_id: str, ts: float, horizon_s: float, mode: str) -> bool:
    """An alert at `ts` was right: the user churned within the horizon, or had already churned
    (a silent dropout alerted after its last activity) and did not come back within it."""
    if truth.churned_within(user_id, ts, horizon_s, mode):
        return True
    c = truth.churn_of(user_id)
    return (
        c is not None
        and counts(c, mode)
        and c.ts <= ts
        and (c.returned_ts is None or c.returned_ts > ts + horizon_s)
    )


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def daily_quality(
    rows: Iterable[tuple[str, float, float]], truth: Truth, horizon_s: float, mode: str
) -> dict[str, Any]:
    """AUCs of daily rows `(user_id, ts, score)` against churn within the horizon."""
    scores: list[float] = []
    labels: list[bool] = []
    leads: list[float] = []  # days before the churn, positives only (NaN for negatives)
    oracle_scores: list[float] = []
    oracle_labels: list[bool] = []
    model_on_oracle_rows: list[float] = []
    not_at_risk = open_ = 0
    for user_id, ts, score in rows:
        if not truth.at_risk(user_id, ts):
            not_at_risk += 1
            continue
        if ts + horizon_s > truth.end:
            open_ += 1
            continue
        label = truth.churned_within(user_id, ts, horizon_s, mode)
        scores.append(score)
        labels.append(label)
        churn = truth.churn_of(user_id) if label else None
        leads.append((churn.ts - ts) / DAY_S if churn is not None else float("nan"))
        o = truth.oracle(user_id, ts)
        if o is not None:
            oracle_scores.append(o)
            oracle_labels.append(label)
            model_on_oracle_rows.append(score)
    negatives = [s for s, y in zip(scores, labels, strict=True) if not y]
    by_lead: dict[str, dict[str, Any]] = {}
    for lo, hi in LEAD_BUCKETS:
        pos = [s for s, d in zip(scores, leads, strict=True) if lo <= d < hi]
        name = f"{lo:g}-{hi:g}d" if hi != float("inf") else f"{lo:g}+d"
        by_lead[name] = {
            "positives": len(pos),
            "auc": exact_roc_auc(pos + negatives, [True] * len(pos) + [False] * len(negatives)),
        }
    return {
        "rows": len(scores),
        "positives": sum(labels),
        "left_out_not_at_risk": not_at_risk,
        "left_out_open": open_,
        "auc": exact_roc_auc(scores, labels),
        "auc_by_lead": by_lead,
        "oracle_rows": len(oracle_scores),
        "oracle_auc": exact_roc_auc(oracle_scores, oracle_labels),
        "model_auc_on_oracle_rows": exact_roc_auc(model_on_oracle_rows, oracle_labels),
    }


def alert_quality(
    alerts: Iterable[tuple[str, float]],
    truth: Truth,
    segment: str,
    horizon_s: float,
    mode: str,
) -> dict[str, Any]:
    """Judge one segment's churn_risk alerts `(user_id, ts)` against the truth.

    Recall: churners (per `mode`) whose churn leaves a horizon inside the history, alerted in
    the horizon before the churn or, for a silent dropout, after its last activity before it
    came back within a horizon (the product itself sees inactivity only after quiet days).
    """
    by_user: dict[str, list[float]] = {}
    judged = hits = 0
    n = 0
    for user_id, ts in alerts:
        n += 1
        by_user.setdefault(user_id, []).append(ts)
        if ts + horizon_s <= truth.end:
            judged += 1
            hits += alert_hit(truth, user_id, ts, horizon_s, mode)
    churners = [
        c
        for c in truth.churns()
        if c.segment == segment and counts(c, mode) and c.ts + horizon_s <= truth.end
    ]
    caught: dict[str, bool] = {}
    leads: list[float] = []
    silent_delays: list[float] = []
    for c in churners:
        stop = c.ts + horizon_s if c.kind == "silent" else c.ts
        if c.returned_ts is not None:
            stop = min(stop, c.returned_ts)
        mine = [ts for ts in by_user.get(c.user_id, ()) if c.ts - horizon_s <= ts <= stop]
        caught[c.user_id] = bool(mine)
        if mine and min(mine) <= c.ts:
            leads.append((c.ts - min(mine)) / DAY_S)
        if c.kind == "silent":
            # Any later alert before a return, however late, tells how long the silence took.
            end = c.returned_ts if c.returned_ts is not None else truth.end
            later = [ts for ts in by_user.get(c.user_id, ()) if c.ts - horizon_s <= ts <= end]
            silent_delays.append((min(later) - c.ts) / DAY_S if later else float("inf"))

    def recall(group: list[Churn]) -> dict[str, Any]:
        return {
            "churners": len(group),
            "recall": _share(sum(caught[c.user_id] for c in group), len(group)),
        }

    alerted_delays = [d for d in silent_delays if d != float("inf")]
    prompt = sum(d <= SILENT_PROMPT_DAYS for d in silent_delays)
    return {
        "alerts": n,
        "judged": judged,
        "precision": _share(hits, judged),
        **recall(churners),
        "recall_cancel": recall([c for c in churners if c.kind == "cancel"])["recall"],
        "recall_silent": recall([c for c in churners if c.kind == "silent"])["recall"],
        "recall_no_warning": recall([c for c in churners if not c.warned])["recall"],
        "median_lead_days": _median(leads),
        "silent_dropouts": len(silent_delays),
        "silent_alerted": len(alerted_delays),
        "silent_median_delay_days": _median(alerted_delays),
        f"silent_alerted_within_{SILENT_PROMPT_DAYS:g}d": _share(prompt, len(silent_delays)),
    }


def cold_start(
    alerts: Sequence[tuple[str, float]],
    row_ts: Sequence[float],
    truth: Truth,
    horizon_s: float,
    mode: str,
) -> dict[str, Any]:
    """Alerts per 1,000 daily rows and their precision in the first days vs the steady state."""
    early_end = truth.start + COLD_START_DAYS * DAY_S
    steady = truth.start + STEADY_FROM_DAYS * DAY_S

    def phase(lo: float, hi: float) -> dict[str, Any]:
        mine = [(u, ts) for u, ts in alerts if lo <= ts < hi]
        rows = sum(lo <= ts < hi for ts in row_ts)
        judged = [(u, ts) for u, ts in mine if ts + horizon_s <= truth.end]
        hits = sum(alert_hit(truth, u, ts, horizon_s, mode) for u, ts in judged)
        return {
            "alerts": len(mine),
            "rows": rows,
            "alerts_per_1k_rows": 1000 * len(mine) / rows if rows else None,
            "precision": _share(hits, len(judged)),
        }

    first = phase(truth.start, early_end)
    rest = phase(steady, truth.end)
    rates = (first["alerts_per_1k_rows"], rest["alerts_per_1k_rows"])
    return {
        f"first_{COLD_START_DAYS:g}_days": first,
        f"from_day_{STEADY_FROM_DAYS:g}": rest,
        "rate_ratio": rates[0] / rates[1] if rates[0] is not None and rates[1] else None,
    }
