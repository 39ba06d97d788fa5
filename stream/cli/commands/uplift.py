"""`churnstream uplift ALERTS --truth TRUTH`: do the interventions work? Churn of alerted
treatment customers vs alerted holdout customers, per segment x action (model/uplift.py).

ALERTS is a JSONL file of `churn.alerts` records made with an experiment (`replay --alerts`
with `CHURNSTREAM_ALERTS_CONFIG` naming one, or `tail churn.alerts --json`); an alert's outcome
is whether its customer churned within the alert's horizon per the ground truth (the
simulator's `*.truth.json`). Alerts whose horizon runs past the truth's end are left out.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from churnstream.stream.cli.common import CommandError
from churnstream.stream.settings import Settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "uplift", help="churn of alerted treatment vs holdout customers per segment x action"
    )
    p.add_argument("alerts", type=Path, help="alerts JSONL (records of churn.alerts)")
    p.add_argument(
        "--truth",
        type=Path,
        required=True,
        help="ground truth of the history (the simulator's *.truth.json)",
    )
    p.add_argument("--kind", default=None, help="only alerts of this kind (default: all)")
    p.add_argument("--json", action="store_true", help="one JSON object per row")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from churnstream.model.evaluation import alert_hit
    from churnstream.model.uplift import measure
    from churnstream.stream.contract.events import DAY_S
    from churnstream.stream.contract.validation import parse_ts
    from churnstream.stream.devtools.simulator.judge import SimulatorTruth

    for path in (args.alerts, args.truth):
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
    truth = SimulatorTruth.read(args.truth)
    horizons = truth.truth.horizon_days
    modes = truth.truth.label_modes

    def outcome(alert: Mapping[str, Any]) -> bool | None:
        segment = str(alert.get("segment"))
        days = alert.get("horizon_days") or horizons.get(segment)
        if days is None:
            return None
        ts, horizon_s = parse_ts(alert.get("ts")), float(days) * DAY_S
        if ts is None or ts + horizon_s > truth.end:
            return None  # the outcome is not known yet
        return alert_hit(truth, str(alert["user_id"]), ts, horizon_s, modes.get(segment, "cancel"))

    records = [orjson.loads(line) for line in args.alerts.read_bytes().splitlines() if line.strip()]
    rows = measure(records, outcome, None if args.kind is None else [args.kind])
    if not rows:
        print("no alert of an experiment (no `holdout` field) with a known outcome")
        return 0
    if args.json:
        for row in rows:
            sys.stdout.write(orjson.dumps(row.to_dict()).decode() + "\n")
        return 0
    print(format_rows([row.to_dict() for row in rows]))
    return 0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _pp(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f}"


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A table: one line per segment x action."""
    head = (
        "segment",
        "action",
        "treated",
        "churn",
        "holdout",
        "churn",
        "uplift pp",
        "95% CI pp",
        "more needed",
    )
    lines = [head]
    for r in rows:
        ci = r["ci95"]
        more = r["more_needed"]
        lines.append(
            (
                r["segment"],
                r["action"],
                f"{r['treated']:,}",
                _pct(r["treated_churn_rate"]),
                f"{r['holdout']:,}",
                _pct(r["holdout_churn_rate"]),
                _pp(r["uplift"]),
                "-" if ci is None else f"[{_pp(ci[0])}, {_pp(ci[1])}]",
                "-" if more is None else f"{more:,}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    )
