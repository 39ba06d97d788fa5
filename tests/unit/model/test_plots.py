"""model.plots: the numbers behind the visual report, by hand and from a real replay."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

from churnstream.agents.configure import alert_policy, engine_config
from churnstream.model.plots import (
    alerts_per_day,
    gain_curve,
    histogram,
    lead_histogram,
    replay_plots,
    segment_plots,
)
from churnstream.model.replay import Replay
from churnstream.model.replay_input import read_records
from churnstream.stream.devtools.simulator import SimConfig, generate, write_jsonl
from churnstream.stream.settings import Settings

SIM = SimConfig(users=80, days=40, seed=3)
ENV = {"CHURNSTREAM_MIN_LABELS": "50", "CHURNSTREAM_SNAPSHOT_EVERY": "50"}


def test_gain_of_a_perfect_and_of_an_inverted_ranking() -> None:
    scores = [0.9, 0.8, 0.3, 0.2, 0.1]
    perfect = gain_curve(scores, [True, True, False, False, False], points=5)
    assert [round(g["gain"], 3) for g in perfect] == [0.5, 1.0, 1.0, 1.0, 1.0]
    assert perfect[0]["lift"] == pytest.approx(2.5)  # 50 % of churners in 20 % of users
    inverted = gain_curve(scores, [False, False, False, True, True], points=5)
    assert [round(g["gain"], 3) for g in inverted] == [0.0, 0.0, 0.0, 0.5, 1.0]
    assert perfect[-1]["population"] == inverted[-1]["population"] == 1.0


def test_gain_needs_a_positive() -> None:
    assert gain_curve([0.1, 0.2], [False, False]) == []
    assert gain_curve([], []) == []


def test_histogram_shares_and_edges() -> None:
    assert histogram([0.0, 0.05, 0.5, 1.0], bins=4) == [0.5, 0.0, 0.25, 0.25]
    assert histogram([], bins=3) == [0.0, 0.0, 0.0]


def test_lead_histogram_bins_days() -> None:
    bins = lead_histogram([0.2, 1.5, 1.9, 3.0])
    assert [b["n"] for b in bins] == [1, 2, 0, 1]
    assert bins[-1]["hi"] == 4.0
    assert lead_histogram([]) == []


def test_alerts_per_day_fills_days_without_alerts() -> None:
    alerts = [
        {"ts": "2026-03-01T10:00:00.000Z", "kind": "churn_risk", "severity": "warning"},
        {"ts": "2026-03-01T23:59:59.000Z", "kind": "churn_risk", "severity": "warning"},
        {"ts": "2026-03-03T00:00:00.000Z", "kind": "roi_drop", "severity": "critical"},
    ]
    assert alerts_per_day(alerts) == [
        {"day": "2026-03-01", "counts": {"churn_risk/warning": 2}},
        {"day": "2026-03-02", "counts": {}},
        {"day": "2026-03-03", "counts": {"roi_drop/critical": 1}},
    ]
    assert alerts_per_day([]) == []


def test_segment_plots_split_churners_from_the_others() -> None:
    plots = segment_plots([0.9, 0.1, 0.15], [True, False, False], [2.0])
    assert plots["positives"] == 1 and plots["examples"] == 3
    assert plots["score_histogram"]["churned"][18] == 1.0
    assert sum(plots["score_histogram"]["stayed"]) == pytest.approx(1.0)
    assert plots["lead_days"]["median"] == 2.0
    assert [b["n"] for b in plots["calibration"]] == [2, 1]


def test_replay_plots_from_a_real_replay(tmp_path: Path) -> None:
    path = tmp_path / "sim.jsonl"
    write_jsonl(generate(SIM), path)
    settings = Settings.from_env(ENV)
    alerts_out = io.BytesIO()
    replay = Replay(
        engine_config(settings),
        alert_policy(settings),
        snapshot_every=settings.snapshot_every,
        alerts_out=alerts_out,
    )
    report = replay.run(read_records(path))
    alerts = [orjson.loads(line) for line in alerts_out.getvalue().splitlines()]
    plots = replay_plots(replay, alerts)
    assert set(plots["segments"]) == set(report["segments"])
    for name, seg in plots["segments"].items():
        labels = report["segments"][name]["labels"]
        # The window holds every labelled example of this small history.
        assert seg["examples"] == labels["positive"] + labels["negative"]
        assert seg["positives"] == labels["positive"]
        assert seg["gain"] and seg["gain"][-1]["gain"] == pytest.approx(1.0)
    assert sum(sum(d["counts"].values()) for d in plots["alerts_per_day"]) == len(alerts) > 0
