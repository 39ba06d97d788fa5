"""Prequential quality per segment: each example is scored BEFORE the model learns it.

Ranking metrics (ROC AUC, PR AUC) are exact over a bounded window of recent examples, not
river.metrics.ROCAUC's 10-threshold approximation, which under-reports badly on the
low-probability scores of a rare-event problem. They are computed on `report()` (a metrics
scrape), not on every update, so `update` stays O(1) amortised.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

from river import drift

_EPS = 1e-15


def log_loss(score: float, label: bool) -> float:
    """Binary cross-entropy of one prediction, clipped so a certain miss stays finite."""
    p = min(max(score, _EPS), 1.0 - _EPS)
    return -math.log(p if label else 1.0 - p)


def exact_roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """ROC AUC by ranks (Mann-Whitney U), ties counted as 1/2; None if a class is missing."""
    n = len(scores)
    n_pos = sum(1 for y in labels if y)
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = sorted(range(n), key=scores.__getitem__)
    rank_sum_pos = 0.0
    i = 0
    while i < n:
        j = i
        while j + 1 < n and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        avg_rank = (i + j) / 2.0 + 1.0  # 1-based average rank of the tie group
        rank_sum_pos += avg_rank * sum(1 for k in range(i, j + 1) if labels[order[k]])
        i = j + 1
    return (rank_sum_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def average_precision(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """PR AUC as average precision: sum over thresholds of (R_k - R_{k-1}) * P_k.

    Tied scores form one threshold (as in scikit-learn). None if there is no positive.
    """
    n_pos = sum(1 for y in labels if y)
    if n_pos == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    tp = fp = 0
    ap = 0.0
    i = 0
    n = len(order)
    while i < n:
        s = scores[order[i]]
        tp_before = tp
        while i < n and scores[order[i]] == s:
            if labels[order[i]]:
                tp += 1
            else:
                fp += 1
            i += 1
        ap += (tp - tp_before) / n_pos * (tp / (tp + fp))
    return ap


def calibration_bins(
    scores: Sequence[float], labels: Sequence[bool], n_bins: int = 10
) -> list[dict[str, float | int]]:
    """Equal-width score bins: count, mean score and observed positive rate (non-empty only)."""
    n = [0] * n_bins
    s_sum = [0.0] * n_bins
    pos = [0] * n_bins
    for s, y in zip(scores, labels, strict=True):
        b = min(int(s * n_bins), n_bins - 1) if s > 0.0 else 0
        n[b] += 1
        s_sum[b] += s
        pos[b] += 1 if y else 0
    return [
        {
            "lo": b / n_bins,
            "hi": (b + 1) / n_bins,
            "n": n[b],
            "mean_score": s_sum[b] / n[b],
            "positive_rate": pos[b] / n[b],
        }
        for b in range(n_bins)
        if n[b]
    ]


class SegmentQuality:
    """Prequential metrics and loss-drift detection of one segment.

    Counts and mean log loss are cumulative; ROC AUC, PR AUC, precision/recall at the
    threshold and calibration are over the last `window` examples (memory ~ 16 B x window).
    Drift: after `drift_warmup` examples, per-example log loss feeds an ADWIN; `update`
    returns True when ADWIN detects that the recent loss got WORSE (a drop in loss is also a
    change to ADWIN, but the model improving is not a reason to act).
    """

    def __init__(
        self,
        *,
        window: int = 20_000,
        threshold: float = 0.5,
        n_bins: int = 10,
        drift_warmup: int = 1_000,
        drift_delta: float = 0.002,
    ) -> None:
        self.window = window
        self.threshold = threshold
        self.n_bins = n_bins
        self.drift_warmup = drift_warmup
        self.drift_delta = drift_delta
        self.n = 0
        self.n_pos = 0
        self.sum_score = 0.0
        self.sum_log_loss = 0.0
        self.drift_detections = 0
        self._drift_from = drift_warmup  # drift is only watched once n exceeds this
        self._scores: deque[float] = deque(maxlen=window)
        self._labels: deque[bool] = deque(maxlen=window)
        self._adwin = drift.ADWIN(delta=drift_delta)

    def update(self, score: float, label: bool) -> bool:
        """Record one prediction made before its label was learned; True if drift fired."""
        label = bool(label)
        loss = log_loss(score, label)
        self.n += 1
        self.n_pos += label
        self.sum_score += score
        self.sum_log_loss += loss
        self._scores.append(score)
        self._labels.append(label)
        if self.n <= self._drift_from:
            return False
        before = self._adwin.estimation
        self._adwin.update(loss)
        if self._adwin.drift_detected and self._adwin.estimation > before:
            self.drift_detections += 1
            return True
        return False

    def recent(self) -> tuple[list[float], list[bool]]:
        """The last `window` examples' scores and labels, oldest first."""
        return list(self._scores), list(self._labels)

    def reset_drift(self) -> None:
        """Restart drift detection (e.g. after the model was reset), warm-up included."""
        self._adwin = drift.ADWIN(delta=self.drift_delta)
        self._drift_from = self.n + self.drift_warmup

    def report(self) -> dict[str, Any]:
        """JSON-able snapshot of all metrics (None where undefined, e.g. one class only)."""
        scores = list(self._scores)
        labels = list(self._labels)
        tp = fp = fn = 0
        for s, y in zip(scores, labels, strict=True):
            hit = s >= self.threshold
            tp += hit and y
            fp += hit and not y
            fn += (not hit) and y
        n_win = len(scores)
        win_loss = sum(log_loss(s, y) for s, y in zip(scores, labels, strict=True))
        return {
            "n": self.n,
            "n_pos": self.n_pos,
            "n_neg": self.n - self.n_pos,
            "window_n": n_win,
            "roc_auc": exact_roc_auc(scores, labels),
            "pr_auc": average_precision(scores, labels),
            "log_loss": self.sum_log_loss / self.n if self.n else None,
            "window_log_loss": win_loss / n_win if n_win else None,
            "threshold": self.threshold,
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None,
            "mean_score": self.sum_score / self.n if self.n else None,
            "positive_rate": self.n_pos / self.n if self.n else None,
            "calibration": calibration_bins(scores, labels, self.n_bins),
            "drift_detections": self.drift_detections,
        }
