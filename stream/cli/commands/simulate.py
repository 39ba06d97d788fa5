"""`churnstream simulate`: synthetic customers of the three businesses, to a file or to Kafka."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from churnstream.stream.cli.common import CommandError, check_output
from churnstream.stream.cli.progress import Progress
from churnstream.stream.contract.validation import parse_ts
from churnstream.stream.devtools.simulator import (
    SimConfig,
    generate,
    ground_truth,
    truth_path,
    write_jsonl,
)
from churnstream.stream.devtools.simulator.kafka_sink import send_records
from churnstream.stream.kafka.client import client_options
from churnstream.stream.kafka.connect import find_bootstrap
from churnstream.stream.settings import Settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser("simulate", help="generate customer events (JSONL file or Kafka)")
    p.add_argument("--users", type=int, default=1000, help="simulated customers")
    p.add_argument("--days", type=int, default=60, help="days of event time")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--churn-rate", type=float, default=0.25, help="share of customers who churn")
    p.add_argument(
        "--course-silent-share",
        type=float,
        default=0.7,
        help="share of course churners who stop without cancelling",
    )
    p.add_argument(
        "--silent-share",
        type=float,
        default=0.1,
        help="share of saas/docs churners who stop without cancelling",
    )
    p.add_argument("--segments", default="course,saas,docs", help="comma-separated")
    p.add_argument("--start", default=None, help="event-time origin (RFC 3339 or epoch s)")
    p.add_argument("--bad-fraction", type=float, default=0.0, help="share of invalid records")
    p.add_argument(
        "--roi-drop-fraction", type=float, default=0.1, help="share of customers whose ROI drops"
    )
    p.add_argument("--out", default=None, help="write JSONL here instead of sending to Kafka")
    p.add_argument(
        "--truth",
        default=None,
        help="ground-truth JSON path (default: beside --out, else simulation.truth.json)",
    )
    p.add_argument(
        "--rate", type=float, default=None, help="events per wall second to Kafka (default: max)"
    )
    p.set_defaults(handler=run)


def sim_config(args: argparse.Namespace) -> SimConfig:
    start = parse_ts(_number_or_text(args.start)) if args.start else None
    if args.start and start is None:
        raise CommandError(f"--start {args.start!r}: not an RFC 3339 time or epoch seconds")
    kw: dict[str, Any] = {"start": start} if start is not None else {}
    return SimConfig(
        users=args.users,
        days=args.days,
        seed=args.seed,
        churn_rate=args.churn_rate,
        course_silent_share=args.course_silent_share,
        silent_share=args.silent_share,
        segments=tuple(s.strip() for s in args.segments.split(",") if s.strip()),
        bad_fraction=args.bad_fraction,
        roi_drop_fraction=args.roi_drop_fraction,
        **kw,
    )


def _number_or_text(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        config = sim_config(args)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    check_output(args.out, "--out")
    check_output(args.truth, "--truth")
    began = time.monotonic()
    if args.out:
        n = write_jsonl(generate(config), args.out)
        where = args.out
        truth_file = args.truth or str(truth_path(args.out))
    else:
        bootstrap = find_bootstrap(settings)
        progress = Progress("sent")
        n = asyncio.run(
            send_records(
                generate(config),
                bootstrap,
                rate=args.rate,
                progress=progress,
                topic_name=settings.topic,
                producer_options=client_options(settings),
            )
        )
        progress.done()
        where = f"Kafka {bootstrap}"
        truth_file = args.truth or "simulation.truth.json"
    ground_truth(config).write(truth_file)
    elapsed = time.monotonic() - began
    print(
        f"{n:,} records to {where} in {elapsed:.1f} s ({n / max(elapsed, 1e-9):,.0f}/s); "
        f"ground truth: {truth_file}"
    )
    return 0
