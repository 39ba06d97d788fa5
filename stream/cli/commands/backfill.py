"""`churnstream backfill FILE.jsonl`: start the live system from history (agents/backfill.py)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from churnstream.agents.backfill import History, Published, publish, run_history
from churnstream.agents.topic_history import Cuts, TopicHistory, commit_cuts
from churnstream.model.replay import summarize
from churnstream.stream.cli import html_report
from churnstream.stream.cli.common import (
    CommandError,
    add_by_user_option,
    add_jobs_option,
    check_output,
)
from churnstream.stream.cli.history_input import add_history_options, count_records
from churnstream.stream.cli.history_input import history as history_records
from churnstream.stream.contract.timefmt import rfc3339
from churnstream.stream.contract.validation import parse_ts
from churnstream.stream.kafka.connect import find_bootstrap
from churnstream.stream.settings import Settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "backfill",
        help="run a JSONL history through the detector and hand its models and user states "
        "to the live system (before the workers start)",
    )
    p.add_argument(
        "file",
        type=Path,
        nargs="?",
        help="history: JSONL (contract events or `simulate --out`), CSV or Parquet",
    )
    add_history_options(p)
    p.add_argument(
        "--from-topics",
        action="store_true",
        help="read the history from the input topics instead of a file, from their beginning "
        "up to --until (per partition: up to its first record at or after it) or to their end "
        "when the backfill starts; the workers' group then starts where it stopped",
    )
    p.add_argument(
        "--until",
        default=None,
        help="event time (RFC 3339 or epoch seconds) where the live stream takes over: events "
        "at or after it are left out (default: the whole file or topics)",
    )
    p.add_argument(
        "--publish-scores",
        action="store_true",
        help="also publish the history's risk scores and alerts (default: none, they are old)",
    )
    p.add_argument(
        "--html",
        type=Path,
        default=None,
        help="write the history's visual report: one self-contained HTML file (as `replay --html`)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="write user states even if the table's changelog already holds records",
    )
    add_jobs_option(p)
    add_by_user_option(p)
    p.set_defaults(handler=run)


class BackfillProgress:
    """Records read, events/s, event time reached and ETA, on one line (redrawn on a tty)."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self._last = 0.0

    def __call__(self, count: int, reached: float) -> None:
        now = time.monotonic()
        if now - self._last < (0.2 if self.tty else 10.0):
            return
        self._last = now
        rate = count / max(now - self.started, 1e-9)
        eta = (self.total - count) / rate if rate else 0.0
        at = rfc3339(reached) if reached > float("-inf") else "-"
        text = (
            f"backfill {count:,}/{self.total:,} records {rate:,.0f}/s, event time {at}, "
            f"ETA {eta:,.0f} s"
        )
        self.stream.write(("\r" + text) if self.tty else text + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.from_topics == (args.file is not None):
        raise CommandError("give a history FILE or --from-topics (one of them)")
    if args.file is not None and not args.file.is_file():
        raise CommandError(f"{args.file}: no such file")
    until = None
    if args.until is not None:
        until = parse_ts(args.until.strip())
        if until is None:
            with contextlib.suppress(ValueError):
                until = float(args.until)
        if until is None:
            raise CommandError(f"--until {args.until!r}: not an RFC 3339 time or epoch seconds")
    check_output(args.html, "--html")
    bootstrap = find_bootstrap(settings)  # before the long run: a missing broker fails fast
    with contextlib.ExitStack() as stack:
        topics = None
        if args.from_topics:
            topics = stack.enter_context(TopicHistory(settings, bootstrap, until))
            records, progress = topics.records(), BackfillProgress(topics.total)
        else:
            records, progress = history_records(args), BackfillProgress(count_records(args.file))
        scores = alerts = None
        if args.publish_scores:
            scores = stack.enter_context(tempfile.TemporaryFile())
            alerts = stack.enter_context(tempfile.TemporaryFile())
        # The report's alerts-per-day chart reads the alerts as they are made.
        tap = html_report.AlertTap(alerts) if args.html else None
        history = run_history(
            records,
            settings,
            # From the topics the cuts are the filter: a spike before one is the backfill's.
            until=None if topics is not None else until,
            scores_out=scores,
            alerts_out=tap if tap is not None else alerts,
            progress=progress,
            jobs=args.jobs,
            by_user=args.by_user,
        )
        if topics is not None:
            topics.close()  # read to the cuts; its event loop would sit idle while publishing
        progress.done()
        history.until = until
        done = asyncio.run(
            publish(history, settings, bootstrap, force=args.force, scores=scores, alerts=alerts)
        )
        if topics is not None:
            # Last: a backfill that failed before this leaves the workers at the beginning.
            history.after_until = topics.cuts.left()
            asyncio.run(commit_cuts(settings, bootstrap, topics.cuts))
    if tap is not None:
        what = f"backfill of {args.file.name if args.file else 'the input topics'}"
        html_report.write(args.html, history.replay, history.report, tap.alerts, what)
    print(summarize(history.report))
    print(describe(history, done))
    if topics is not None:
        print(describe_cuts(topics.cuts, settings.app_id))
    return 0


def describe_cuts(cuts: Cuts, group: str) -> str:
    """Where the workers start in the input topics."""
    return (
        f"input topics: the workers' group {group} starts where the backfill stopped in each "
        f"of {len(cuts.offsets)} partitions ({cuts.left():,} records there already)"
    )


def describe(history: History, done: Published) -> str:
    """What went where, and where the live stream must take over."""
    events = history.report["events"]
    models = ", ".join(f"{s} v{v}" for s, v in done.models.items()) or "none (nothing learned)"
    lines = [
        f"backfilled {events:,} records in {history.seconds:,.1f} s "
        f"({events / max(history.seconds, 1e-9):,.0f}/s); {history.after_until:,} at or after "
        "--until left for the live stream",
        f"users: {done.users:,} records written to {done.changelog}"
        + (f" ({history.erased:,} events of erased users left out)" if history.erased else ""),
        f"models published to churn.models: {models}",
    ]
    if done.scores or done.alerts:
        lines.append(f"published {done.scores:,} scores and {done.alerts:,} alerts")
    if history.until is not None:
        lines.append(f"live stream takes over at {rfc3339(history.until)} (events at or after)")
    elif history.reached > float("-inf"):
        lines.append(f"live stream takes over after {rfc3339(history.reached)} (events after it)")
    return "\n".join(lines)
