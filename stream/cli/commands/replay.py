"""`churnstream replay FILE.jsonl`: backtest on history with the live code path, no Kafka."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import IO, Any

import orjson

from churnstream.agents import configure
from churnstream.model.replay import summarize
from churnstream.stream.cli import html_report
from churnstream.stream.cli.common import (
    CommandError,
    add_by_user_option,
    add_jobs_option,
    check_output,
)
from churnstream.stream.cli.history_input import add_history_options, history
from churnstream.stream.cli.progress import Progress
from churnstream.stream.devtools.simulator.judge import SimulatorTruth
from churnstream.stream.devtools.simulator.truth import truth_path
from churnstream.stream.settings import Settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser("replay", help="replay a JSONL history offline and report model quality")
    p.add_argument("file", type=Path, help="history: JSONL (e.g. from `simulate --out`) or CSV")
    add_history_options(p)
    p.add_argument("--scores", type=Path, default=None, help="write risk scores (JSONL)")
    p.add_argument("--alerts", type=Path, default=None, help="write alerts (JSONL)")
    p.add_argument("--state", type=Path, default=None, help="write final user states (JSONL)")
    p.add_argument("--report", type=Path, default=None, help="write the report (JSON)")
    p.add_argument(
        "--html",
        type=Path,
        default=None,
        help="write a visual report: one self-contained HTML file (calibration, lift and gain, "
        "score distributions per segment, lead time before churn, alerts per day)",
    )
    p.add_argument(
        "--truth",
        type=Path,
        default=None,
        help="judge predictions and alerts against this ground truth (the simulator's "
        "*.truth.json; default: the one beside FILE, if any)",
    )
    add_jobs_option(p)
    add_by_user_option(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if not args.file.is_file():
        raise CommandError(f"{args.file}: no such file")
    for option in ("scores", "alerts", "state", "report", "html"):
        check_output(getattr(args, option), f"--{option}")
    truth_file = args.truth
    if truth_file is None and truth_path(args.file).is_file():
        truth_file = truth_path(args.file)
    elif truth_file is not None and not truth_file.is_file():
        raise CommandError(f"{truth_file}: no such file")
    truth = SimulatorTruth.read(truth_file) if truth_file is not None else None
    progress = Progress("replayed")
    with contextlib.ExitStack() as stack:
        scores = stack.enter_context(args.scores.open("wb")) if args.scores else None
        alerts: IO[bytes] | None = (
            stack.enter_context(args.alerts.open("wb")) if args.alerts else None
        )
        tap = html_report.AlertTap(alerts) if args.html else None
        if tap is not None:
            alerts = tap
        replay = configure.replay(
            settings,
            scores_out=scores,
            alerts_out=alerts,
            truth=truth,
            jobs=args.jobs,
            by_user=args.by_user,
        )
        report = replay.run(history(args), progress if sys.stderr.isatty() else None)
    if sys.stderr.isatty():
        progress.done()
    if args.state:
        with args.state.open("wb") as fh:
            for view in replay.states():
                fh.write(orjson.dumps(view) + b"\n")
    if args.report:
        args.report.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    if tap is not None:
        html_report.write(args.html, replay, report, tap.alerts, f"replay of {args.file.name}")
    print(summarize(report))
    return 0
