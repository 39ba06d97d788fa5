"""Prequential quality: exact AUC, PR AUC, log loss, calibration, drift."""

from __future__ import annotations

import math
import random

import pytest

from churnstream.model.quality import (
    SegmentQuality,
    average_precision,
    calibration_bins,
    exact_roc_auc,
    log_loss,
)


def brute_auc(scores: list[float], labels: list[bool]) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def brute_ap(scores: list[float], labels: list[bool]) -> float:
    """Mean over positives of precision at their rank (distinct scores only)."""
    ranked = sorted(zip(scores, labels, strict=True), key=lambda sy: -sy[0])
    tp, precisions = 0, []
    for k, (_, y) in enumerate(ranked, start=1):
        if y:
            tp += 1
            precisions.append(tp / k)
    return sum(precisions) / len(precisions)


@pytest.mark.parametrize("seed", range(5))
def test_exact_auc_equals_brute_force_with_ties(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(20, 300)
    # coarse rounding forces many ties; labels correlated with scores
    scores = [round(rng.random(), 1) for _ in range(n)]
    labels = [rng.random() < 0.2 + 0.6 * s for s in scores]
    assert exact_roc_auc(scores, labels) == pytest.approx(brute_auc(scores, labels))


def test_auc_undefined_with_one_class() -> None:
    assert exact_roc_auc([0.1, 0.2], [True, True]) is None
    assert exact_roc_auc([], []) is None


@pytest.mark.parametrize("seed", range(3))
def test_average_precision_matches_definition(seed: int) -> None:
    rng = random.Random(seed)
    scores = [rng.random() for _ in range(200)]
    labels = [rng.random() < s for s in scores]
    assert average_precision(scores, labels) == pytest.approx(brute_ap(scores, labels))
    assert average_precision([0.9, 0.1], [True, False]) == 1.0
    assert average_precision([0.9], [False]) is None


def test_log_loss_values_and_clipping() -> None:
    assert log_loss(0.8, True) == pytest.approx(-math.log(0.8))
    assert log_loss(0.8, False) == pytest.approx(-math.log(0.2))
    assert math.isfinite(log_loss(0.0, True)) and math.isfinite(log_loss(1.0, False))


def test_calibration_bins() -> None:
    scores = [0.05, 0.05, 0.15, 0.95, 1.0]
    labels = [False, True, False, True, True]
    bins = calibration_bins(scores, labels, n_bins=10)
    assert [(b["lo"], b["n"]) for b in bins] == [(0.0, 2), (0.1, 1), (0.9, 2)]
    assert bins[0]["positive_rate"] == 0.5 and bins[0]["mean_score"] == pytest.approx(0.05)
    assert bins[2]["mean_score"] == pytest.approx(0.975)


def test_report_counts_and_threshold_metrics() -> None:
    q = SegmentQuality(window=100, threshold=0.5)
    data = [(0.9, True), (0.7, False), (0.6, True), (0.2, True), (0.1, False)]
    for s, y in data:
        assert q.update(s, y) is False
    r = q.report()
    assert (r["n"], r["n_pos"], r["n_neg"], r["window_n"]) == (5, 3, 2, 5)
    assert r["precision"] == pytest.approx(2 / 3)
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["roc_auc"] == pytest.approx(brute_auc(*map(list, zip(*data, strict=True))))
    assert r["log_loss"] == pytest.approx(sum(log_loss(s, y) for s, y in data) / 5)
    assert r["mean_score"] == pytest.approx(0.5) and r["positive_rate"] == pytest.approx(0.6)
    assert sum(b["n"] for b in r["calibration"]) == 5


def test_window_bounds_ranking_metrics_but_not_counts() -> None:
    q = SegmentQuality(window=10)
    for i in range(50):
        q.update(0.5, i % 2 == 0)
    r = q.report()
    assert r["n"] == 50 and r["window_n"] == 10


def test_empty_report_is_json_safe() -> None:
    import json

    json.dumps(SegmentQuality().report())


def test_drift_fires_when_loss_gets_worse_after_warmup() -> None:
    rng = random.Random(3)
    q = SegmentQuality(drift_warmup=500)
    fired_at = []
    for i in range(4000):
        y = rng.random() < 0.3
        good = 0.8 if y else 0.1
        bad = 0.1 if y else 0.8  # after i=2500 the model is suddenly wrong
        if q.update(good if i < 2500 else bad, y):
            fired_at.append(i)
    assert fired_at, "a sharp loss increase must be detected"
    assert 2500 <= fired_at[0] < 2800
    assert q.report()["drift_detections"] == len(fired_at)


def test_no_drift_during_warmup_or_when_loss_improves() -> None:
    rng = random.Random(4)
    q = SegmentQuality(drift_warmup=1000)
    for i in range(3000):
        y = rng.random() < 0.3
        s = (0.1 if y else 0.8) if i < 1500 else (0.8 if y else 0.1)  # gets better
        assert q.update(s, y) is False
    q2 = SegmentQuality(drift_warmup=10_000)
    for i in range(3000):
        y = rng.random() < 0.3
        assert q2.update((0.8 if y else 0.1) if i < 1500 else (0.1 if y else 0.8), y) is False
