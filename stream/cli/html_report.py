"""The replay's visual report: one self-contained HTML file with inline SVG charts.

No script, no stylesheet or font from the network: the file opens offline in any browser. The
numbers come from `churnstream.model.plots` (calibration, gain and lift, score distributions,
lead time before a cancel, alerts per day) and the replay's report; each chart is followed by
the table of the numbers it draws. Every chart is an `<svg class="chart" data-chart=NAME>`.
`replay --html` and `backfill --html` collect the alerts with `AlertTap` and call `write`.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

import orjson

from churnstream.model.plots import replay_plots
from churnstream.model.replay import Replay

W: Final = 460
H: Final = 280
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 40, 44  # the legend (up to two rows) sits above the plot

SEGMENT_COLORS: Final = {"course": "#1f77b4", "saas": "#ff7f0e", "docs": "#2ca02c"}
ALERT_COLORS: Final = {
    "churn_risk/warning": "#f2b134",
    "churn_risk/critical": "#d62728",
    "roi_drop/warning": "#9ecae1",
    "roi_drop/critical": "#3182bd",
}
OTHER_COLOR: Final = "#888888"

Series = tuple[str, str, Sequence[tuple[float, float]]]  # name, colour, points


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec) if isinstance(value, int | float) else str(value)


def _nice_top(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


class _Plot:
    """Maps data to the drawing area of one chart and collects its SVG elements."""

    def __init__(self, x_max: float, y_max: float) -> None:
        self.x_max = x_max or 1.0
        self.y_max = y_max or 1.0
        self.parts: list[str] = []

    def x(self, value: float) -> float:
        return LEFT + (W - LEFT - RIGHT) * value / self.x_max

    def y(self, value: float) -> float:
        return H - BOTTOM - (H - TOP - BOTTOM) * value / self.y_max

    def axes(self, x_label: str, y_label: str, x_ticks: Sequence[tuple[float, str]]) -> None:
        y_ticks = [self.y_max * i / 4 for i in range(5)]
        for v in y_ticks:
            y = self.y(v)
            self.parts.append(
                f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" class="grid"/>'
                f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_tick(v)}</text>'
            )
        for v, label in x_ticks:
            x = self.x(v)
            self.parts.append(
                f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{_esc(label)}</text>'
            )
        self.parts.append(
            f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" class="axis"/>'
            f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" class="axis"/>'
            f'<text x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H - 6}" text-anchor="middle">'
            f"{_esc(x_label)}</text>"
            f'<text x="14" y="{(TOP + H - BOTTOM) / 2:.0f}" text-anchor="middle" '
            f'transform="rotate(-90 14 {(TOP + H - BOTTOM) / 2:.0f})">{_esc(y_label)}</text>'
        )

    def svg(self, name: str, title: str, legend: Sequence[tuple[str, str]]) -> str:
        keys, x, y = [], float(LEFT), 4
        for label, color in legend:
            width = 26 + 6.2 * len(label)  # about the width of the 11 px label
            if x + width > W and x > LEFT:
                x, y = float(LEFT), y + 15
            keys.append(
                f'<rect x="{x:.0f}" y="{y}" width="10" height="10" fill="{color}"/>'
                f'<text x="{x + 14:.0f}" y="{y + 9}">{_esc(label)}</text>'
            )
            x += width
        return (
            f'<svg class="chart" data-chart="{_esc(name)}" xmlns="http://www.w3.org/2000/svg" '
            f'viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
            f'aria-label="{_esc(title)}"><title>{_esc(title)}</title>'
            + "".join(self.parts)
            + "".join(keys)
            + "</svg>"
        )


def _tick(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


def line_chart(
    name: str,
    title: str,
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    x_max: float = 1.0,
    y_max: float | None = None,
    diagonal: bool = False,
) -> str:
    """Lines with a dot at each point; `diagonal` draws y = x (perfect calibration, random)."""
    top = y_max or _nice_top(max((p[1] for _, _, pts in series for p in pts), default=1.0))
    plot = _Plot(x_max, top)
    plot.axes(x_label, y_label, [(x_max * i / 4, _tick(x_max * i / 4)) for i in range(5)])
    if diagonal:
        end = min(x_max, top)
        plot.parts.append(
            f'<line x1="{plot.x(0):.1f}" y1="{plot.y(0):.1f}" x2="{plot.x(end):.1f}" '
            f'y2="{plot.y(end):.1f}" class="diagonal"/>'
        )
    for label, color, points in series:
        if not points:
            continue
        path = " ".join(f"{plot.x(x):.1f},{plot.y(y):.1f}" for x, y in points)
        plot.parts.append(
            f'<polyline class="series" data-series="{_esc(label)}" points="{path}" '
            f'fill="none" stroke="{color}" stroke-width="2"/>'
        )
        plot.parts.extend(
            f'<circle cx="{plot.x(x):.1f}" cy="{plot.y(y):.1f}" r="2.5" fill="{color}"/>'
            for x, y in points
        )
    return plot.svg(name, title, [(label, color) for label, color, _ in series])


def bar_chart(
    name: str,
    title: str,
    labels: Sequence[str],
    stacks: Mapping[str, Sequence[float]],
    colors: Mapping[str, str],
    *,
    x_label: str,
    y_label: str,
) -> str:
    """Stacked bars, one per label; `stacks` maps a stack name to one value per label."""
    n = len(labels)
    totals = [sum(values[i] for values in stacks.values()) for i in range(n)]
    plot = _Plot(float(max(n, 1)), _nice_top(max(totals, default=1.0)))
    every = max(1, math.ceil(n / 8))  # at most about 8 x labels
    plot.axes(x_label, y_label, [(i + 0.5, labels[i]) for i in range(0, n, every)])
    width = max((W - LEFT - RIGHT) / max(n, 1) - 1.0, 0.5)
    for i in range(n):
        base = 0.0
        for stack, values in stacks.items():
            v = values[i]
            if v <= 0:
                continue
            y0, y1 = plot.y(base), plot.y(base + v)
            plot.parts.append(
                f'<rect class="bar" data-series="{_esc(stack)}" x="{plot.x(i) + 0.5:.1f}" '
                f'y="{y1:.1f}" width="{width:.1f}" height="{max(y0 - y1, 0.5):.1f}" '
                f'fill="{colors.get(stack, OTHER_COLOR)}"><title>{_esc(labels[i])} '
                f"{_esc(stack)}: {_tick(v)}</title></rect>"
            )
            base += v
    legend = [(stack, colors.get(stack, OTHER_COLOR)) for stack in stacks]
    return plot.svg(name, title, legend)


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = "".join(f"<th>{_esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _numbers(summary: str, table: str) -> str:
    return f"<details><summary>{_esc(summary)}</summary>{table}</details>"


def _color(segment: str) -> str:
    return SEGMENT_COLORS.get(segment, OTHER_COLOR)


def _calibration(segments: Mapping[str, Any]) -> str:
    series = [
        (s, _color(s), [(b["mean_score"], b["positive_rate"]) for b in p["calibration"]])
        for s, p in segments.items()
    ]
    chart = line_chart(
        "calibration",
        "Calibration: observed churn rate by predicted score",
        series,
        x_label="mean predicted score (bin)",
        y_label="observed churn rate",
        y_max=1.0,
        diagonal=True,
    )
    rows = [
        (s, f"{b['lo']:.1f}-{b['hi']:.1f}", b["n"], _fmt(b["mean_score"]), _fmt(b["positive_rate"]))
        for s, p in segments.items()
        for b in p["calibration"]
    ]
    head = ("segment", "score bin", "examples", "mean score", "churn rate")
    return chart + _numbers("numbers", _table(head, rows))


def _gain(segments: Mapping[str, Any]) -> str:
    series = [
        (s, _color(s), [(0.0, 0.0)] + [(g["population"], g["gain"]) for g in p["gain"]])
        for s, p in segments.items()
    ]
    chart = line_chart(
        "gain",
        "Cumulative gain: churners found in the top-scored share of examples",
        series,
        x_label="share of examples, highest scores first",
        y_label="share of churners found",
        y_max=1.0,
        diagonal=True,
    )
    rows = [
        (s, f"{g['population']:.0%}", f"{g['gain']:.1%}", _fmt(g["lift"], ".2f"))
        for s, p in segments.items()
        for g in p["gain"]
        if round(g["population"] * 20) in (1, 2, 4, 6, 10, 20)  # 5, 10, 20, 30, 50, 100 %
    ]
    return chart + _numbers("lift at the top", _table(("segment", "top", "gain", "lift"), rows))


def _distributions(segments: Mapping[str, Any]) -> str:
    parts = []
    for s, p in segments.items():
        hist = p["score_histogram"]
        bins = hist["bins"]
        mids = [(i + 0.5) / bins for i in range(bins)]
        series = [
            ("churned", "#d62728", list(zip(mids, hist["churned"], strict=True))),
            ("stayed", "#7f7f7f", list(zip(mids, hist["stayed"], strict=True))),
        ]
        parts.append(
            line_chart(
                f"scores-{s}",
                f"Score distribution, {s}: churners vs the others",
                series,
                x_label="score",
                y_label="share of examples",
            )
        )
        rows = [
            (f"{i / bins:.2f}-{(i + 1) / bins:.2f}", f"{c:.1%}", f"{o:.1%}")
            for i, (c, o) in enumerate(zip(hist["churned"], hist["stayed"], strict=True))
        ]
        parts.append(_numbers(f"numbers ({s})", _table(("score", "churned", "stayed"), rows)))
    return "".join(parts)


def _lead(segments: Mapping[str, Any]) -> str:
    top = max((len(p["lead_days"]["histogram"]) for p in segments.values()), default=0)
    labels = [f"{d}" for d in range(top)]
    stacks = {
        s: [b["n"] for b in p["lead_days"]["histogram"]]
        + [0] * (top - len(p["lead_days"]["histogram"]))
        for s, p in segments.items()
    }
    chart = bar_chart(
        "lead-time",
        "Lead time: days from the first churn_risk alert to the cancel",
        labels,
        stacks,
        SEGMENT_COLORS,
        x_label="days before the cancel",
        y_label="churners alerted",
    )
    rows = [
        (s, p["lead_days"]["n"], _fmt(p["lead_days"]["median"], ".1f")) for s, p in segments.items()
    ]
    head = ("segment", "cancels alerted before", "median lead (days)")
    return chart + _numbers("numbers", _table(head, rows))


def _alerts(per_day: Sequence[Mapping[str, Any]]) -> str:
    days = [d["day"][5:] for d in per_day]  # MM-DD: the year is in the table
    kinds = sorted({k for d in per_day for k in d["counts"]})
    stacks = {k: [d["counts"].get(k, 0) for d in per_day] for k in kinds}
    chart = bar_chart(
        "alerts-per-day",
        "Alerts per day of event time, by kind and severity",
        days,
        stacks,
        ALERT_COLORS,
        x_label="day (event time, UTC)",
        y_label="alerts",
    )
    rows = [(d["day"], *(d["counts"].get(k, 0) for k in kinds)) for d in per_day]
    return chart + _numbers("numbers", _table(("day", *kinds), rows))


def _summary(report: Mapping[str, Any]) -> str:
    rows = []
    for name, s in report.get("segments", {}).items():
        truth = s.get("truth", {})
        rows.append(
            (
                name,
                f"{s['scores']:,}",
                f"{s['labels']['positive']:,} / {s['labels']['negative']:,}",
                _fmt(s["published_auc"]),
                _fmt(s["rules_auc"]),
                _fmt(truth.get("daily", {}).get("auc")),
                _fmt(truth.get("alerts", {}).get("precision")),
                _fmt(truth.get("alerts", {}).get("recall"), ".0%"),
                s["churners"],
                _fmt(s["median_lead_days"], ".1f"),
            )
        )
    head = (
        "segment",
        "scores",
        "labels + / -",
        "published AUC",
        "rules AUC",
        "AUC vs truth",
        "alert precision",
        "alert recall",
        "cancels",
        "median lead (days)",
    )
    return _table(head, rows)


STYLE: Final = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
.charts{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.charts>div{flex:0 0 auto}
svg.chart{background:#fff;border:1px solid #ddd;font-size:11px}
svg .grid{stroke:#eee}svg .axis{stroke:#444}svg .diagonal{stroke:#bbb;stroke-dasharray:4 3}
table{border-collapse:collapse;font-size:12px;margin:6px 0}
th,td{border:1px solid #ddd;padding:2px 6px;text-align:right}th{background:#f4f4f4}
details{margin:4px 0 12px}p.note{color:#555}
"""


def render(report: Mapping[str, Any], plots: Mapping[str, Any], title: str) -> str:
    """The whole report as one HTML document."""
    segments = plots["segments"]
    sections = [
        ("Summary", _summary(report)),
        ("Calibration", _calibration(segments)),
        ("Lift and gain", _gain(segments)),
        (
            "Score distributions per segment",
            f'<div class="charts">{_distributions(segments)}</div>',
        ),
        ("Lead time before churn", _lead(segments)),
        ("Alerts per day", _alerts(plots["alerts_per_day"])),
    ]
    body = "".join(f"<h2>{_esc(h)}</h2>{content}" for h, content in sections)
    note = (
        f"{report.get('events', 0):,} events, {report.get('users', 0):,} users. Calibration, "
        "gain and score distributions use the labelled examples the replay scored before their "
        "label was known (the last 20,000 per segment); lead time counts cancels alerted "
        "before they happened."
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title><style>{STYLE}</style></head><body>"
        f'<h1>{_esc(title)}</h1><p class="note">{_esc(note)}</p>{body}</body></html>\n'
    )


class AlertTap(io.BytesIO):
    """The replay's alerts stream: keeps each alert (for the alerts-per-day chart) and passes
    the bytes on to `out`, the `--alerts` file, if any (nothing is kept in the buffer)."""

    def __init__(self, out: IO[bytes] | None) -> None:
        super().__init__()
        self.out = out
        self.alerts: list[dict[str, Any]] = []

    def write(self, data: Any) -> int:
        raw = bytes(data)
        # The replay writes one whole JSON line per call.
        self.alerts.extend(orjson.loads(line) for line in raw.splitlines() if line.strip())
        if self.out is not None:
            self.out.write(raw)
        return len(raw)


def write(
    path: Path,
    replay: Replay,
    report: Mapping[str, Any],
    alerts: Sequence[Mapping[str, Any]],
    what: str,
) -> None:
    """Write the visual report of a finished `replay` (its `report` and published `alerts`)."""
    page = render(report, replay_plots(replay, alerts), f"churnstream {what}")
    path.write_text(page, encoding="utf-8")
