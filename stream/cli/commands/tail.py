"""`churnstream tail TOPIC`: print records of an output topic readably, one line each.

With `--status`, while no record arrives tail also says what the worker waits for (its
`GET /status/`): an alert that does not come may be a decision held for a lagging input source
or a model snapshot (docs/architecture.md, "Progress per source").
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import urllib.request
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from churnstream.stream.cli.formatting import format_record
from churnstream.stream.kafka.client import client_options, security_settings
from churnstream.stream.kafka.connect import find_bootstrap
from churnstream.stream.settings import Settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser("tail", help="print churn.alerts, churn.risk-scores or churn.dlq records")
    p.add_argument("topic", help="topic name, e.g. churn.alerts (the prefix is added)")
    p.add_argument("--json", action="store_true", help="raw JSON values, one per line")
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    p.add_argument("--limit", type=int, default=None, help="stop after N records")
    p.add_argument(
        "--idle-exit",
        type=float,
        default=None,
        help="stop after this many seconds without a record",
    )
    p.add_argument(
        "--status",
        action="store_true",
        help="while no record arrives, print what the worker waits for (to stderr)",
    )
    p.set_defaults(handler=run)


STATUS_EVERY_S = 5.0


def format_status(doc: dict[str, Any]) -> str:
    """One line from a worker's `/status/` answer."""
    parts = [
        f"{s['source']} ({'at ' + s['progress'] if s.get('progress') else 'nothing yet'}, "
        f"waited {s['waited_s']:.0f} of {s['limit_s']:.0f} s)"
        for s in doc.get("waiting_for", ())
    ]
    held = doc.get("model_held")
    if held:
        parts.append(
            f"a model snapshot as of {held['boundary']} "
            f"(waited {held['waited_s']:.0f} of {held['limit_s']:.0f} s)"
        )
    if doc.get("intake_held"):
        held = sum(doc.get("events_held", {}).values())
        parts.append(
            f"the daily rows before {doc['intake_held']} ({held} events from then on held)"
        )
    return "worker waits for " + "; ".join(parts) if parts else "worker waits for nothing"


def fetch_status(url: str, token: str | None = None) -> str:
    """The worker's status line (with the read API's bearer token if one is set), or why it
    could not be read."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 (http URL we build)
        with urllib.request.urlopen(request, timeout=2) as resp:  # noqa: S310
            return format_status(orjson.loads(resp.read()))
    except (OSError, ValueError) as exc:
        return f"worker status unavailable at {url}: {exc}"


async def tail(
    bootstrap: str,
    topic: str,
    settings: Settings,
    *,
    as_json: bool = False,
    from_beginning: bool = False,
    limit: int | None = None,
    idle_exit: float | None = None,
    out: Any = None,
    status: Callable[[], str] | None = None,
    err: Any = None,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    color = not as_json and out.isatty()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        **client_options(settings),
    )
    await consumer.start()
    n = 0
    try:
        idle = 0.0
        while limit is None or n < limit:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            if not batch:
                idle += 0.5
                if status is not None and idle % STATUS_EVERY_S == 0:
                    err.write(status() + "\n")
                    err.flush()
                if idle_exit is not None and idle >= idle_exit:
                    break
                continue
            idle = 0.0
            for records in batch.values():
                for record in records:
                    value = record.value or b""
                    if as_json:
                        line = value.decode("utf-8", "replace")
                    else:
                        line = format_record(topic, value, color=color)
                    out.write(line + "\n")
                    n += 1
                    if limit is not None and n >= limit:
                        break
            out.flush()
    finally:
        await consumer.stop()
    return n


def status_url(settings: Settings) -> str:
    return f"http://{settings.web_host}:{settings.web_port}/status/"


def run(args: argparse.Namespace, settings: Settings) -> int:
    topic = args.topic
    if not topic.startswith(settings.topic_prefix):
        topic = settings.topic(topic)
    try:
        asyncio.run(
            tail(
                find_bootstrap(settings),
                topic,
                settings,
                as_json=args.json,
                from_beginning=args.from_beginning,
                limit=args.limit,
                idle_exit=args.idle_exit,
                status=partial(
                    fetch_status,
                    status_url(settings),
                    security_settings(settings).web_token.reveal() or None,
                )
                if args.status
                else None,
            )
        )
    except KeyboardInterrupt:
        return 0
    return 0
