"""stream.cli.html_report and `replay --html`: every chart, self-contained, numbers included."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from churnstream.model.plots import alerts_per_day, segment_plots
from churnstream.stream.cli import html_report
from churnstream.stream.cli.main import main
from churnstream.stream.devtools.simulator import SimConfig, generate, write_jsonl

CHARTS = {
    "calibration",
    "gain",
    "scores-course",
    "scores-saas",
    "lead-time",
    "alerts-per-day",
}


def _plots() -> dict[str, Any]:
    scores = [0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95]
    labels = [False, False, False, True, False, True, True, True]
    alerts = [
        {"ts": "2026-03-01T10:00:00Z", "kind": "churn_risk", "severity": "warning"},
        {"ts": "2026-03-04T10:00:00Z", "kind": "roi_drop", "severity": "critical"},
    ]
    return {
        "segments": {
            "course": segment_plots(scores, labels, [1.5, 3.0]),
            "saas": segment_plots(scores[::-1], labels, [0.5]),
        },
        "alerts_per_day": alerts_per_day(alerts),
    }


REPORT: dict[str, Any] = {
    "events": 1234,
    "users": 10,
    "segments": {
        name: {
            "scores": 100,
            "labels": {"positive": 4, "negative": 4},
            "published_auc": 0.8,
            "rules_auc": 0.7,
            "churners": 3,
            "median_lead_days": 2.0,
        }
        for name in ("course", "saas")
    },
}


def test_every_chart_is_drawn_with_its_numbers() -> None:
    page = html_report.render(REPORT, _plots(), "a <test> report")
    charts = dict(re.findall(r'<svg class="chart" data-chart="([\w-]+)"(.*?)</svg>', page, re.S))
    assert set(charts) == CHARTS
    for name in ("calibration", "gain", "scores-course", "scores-saas"):
        assert charts[name].count('<polyline class="series"') >= 2, name
    assert charts["lead-time"].count('<rect class="bar"') == 3  # days 0, 1 and 3
    assert charts["alerts-per-day"].count('<rect class="bar"') == 2  # 03-01 and 03-04
    # The numbers behind each chart are in the page too.
    assert page.count("<details>") == 6
    assert "2026-03-02" in page  # a day without alerts is a row of zeros
    assert "a &lt;test&gt; report" in page  # text is escaped


def test_page_is_self_contained() -> None:
    page = html_report.render(REPORT, _plots(), "report")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "<link" not in page and "url(" not in page
    # The only URL is the SVG namespace, which is a name, not something fetched.
    assert set(re.findall(r"https?://[^\s\"']+", page)) == {"http://www.w3.org/2000/svg"}


def test_empty_history_renders_without_charts_data() -> None:
    page = html_report.render({"segments": {}}, {"segments": {}, "alerts_per_day": []}, "x")
    assert 'data-chart="alerts-per-day"' in page


def test_replay_writes_the_html_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = tmp_path / "h.jsonl"
    write_jsonl(generate(SimConfig(users=40, days=30, seed=2)), history)
    out = tmp_path / "report.html"
    alerts = tmp_path / "alerts.jsonl"
    assert main(["replay", str(history), "--html", str(out), "--alerts", str(alerts)]) == 0
    page = out.read_text()
    names = set(re.findall(r'<svg class="chart" data-chart="([\w-]+)"', page))
    assert {"calibration", "gain", "lead-time", "alerts-per-day"} <= names
    # The alerts file is written as before, and the chart counts the same alerts.
    n_alerts = len(alerts.read_text().splitlines())
    assert n_alerts > 0
    rows = re.findall(r"<tr><td>\d{4}-\d\d-\d\d</td>((?:<td>\d+</td>)+)</tr>", page)
    assert sum(int(n) for row in rows for n in re.findall(r"\d+", row)) == n_alerts
    assert "events" in capsys.readouterr().out  # the text summary is still printed
