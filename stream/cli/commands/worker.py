"""`churnstream worker`: run one Faust worker (scale out by running more)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from churnstream.stream.cli.common import CommandError
from churnstream.stream.kafka.connect import find_bootstrap
from churnstream.stream.settings import Settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "worker",
        help="run a churnstream worker (Faust)",
        description="Run one worker. Its log level is the command's (--log-level, -v or "
        "CHURNSTREAM_LOG_LEVEL).",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    import faust

    from churnstream.agents.app import create_app

    app = create_app(settings, bootstrap=find_bootstrap(settings))
    # Before joining the group: a keyed topic with another partition count would split users.
    # A loop of its own, so Faust's worker still finds no loop closed under it.
    loop = asyncio.new_event_loop()
    try:
        problems = loop.run_until_complete(app.churnstream.partition_problems())
    finally:
        loop.close()
    if problems:
        reason = "; ".join(problems)
        raise CommandError(f"refusing to start: {reason}: one user would be split in two states")
    worker = faust.Worker(app, loglevel=settings.log_level)
    # Faust's terminal spinner sets the root logger to DEBUG when the level is WARNING or
    # above, so every debug call on the hot path (one per produced record) builds a record.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as done:
        if done.code not in (0, None):
            raise
    # The worker context (agents.register) says why the worker stopped itself, if it did.
    fatal = getattr(getattr(app, "churnstream", None), "fatal", None)
    if fatal is not None:
        raise CommandError(f"the worker stopped: {fatal}")
    return 0
