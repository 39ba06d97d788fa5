"""`churnstream deliver --config FILE`: send `churn.alerts` to webhooks, Slack and files.

Its own consumer group (`<app_id>-deliver` unless the file names one), so it runs next to the
workers and any number of `deliver` processes share the alerts. SIGTERM or Ctrl-C finishes
the batch in hand, commits it and leaves the group. docs/delivery.md describes the file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from typing import Any

from churnstream.stream.cli.common import CommandError
from churnstream.stream.settings import Settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser("deliver", help="send churn.alerts to webhooks, Slack and JSONL files")
    p.add_argument("--config", required=True, help="delivery configuration (TOML)")
    p.add_argument("--check", action="store_true", help="validate the configuration and exit")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=9465,
        help="port of the /metrics endpoint (0 = none); host: CHURNSTREAM_METRICS_HOST",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from churnstream.model.delivery import DeliveryConfigError, load_config

    try:
        config = load_config(args.config, os.environ)
    except DeliveryConfigError as exc:
        raise CommandError(str(exc)) from None
    if args.check:
        print(f"{args.config}: {len(config.sinks)} sinks, {len(config.routes)} routes")
        return 0
    from churnstream.stream.kafka.connect import find_bootstrap

    return asyncio.run(_serve(settings, config, find_bootstrap(settings), args.metrics_port))


async def _serve(settings: Settings, config: Any, bootstrap: str, metrics_port: int) -> int:
    from prometheus_client import start_http_server

    from churnstream.agents.delivery import DeliveryMetrics, run_delivery

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics = DeliveryMetrics()
    server = None
    if metrics_port:
        server, thread = start_http_server(
            metrics_port, addr=settings.metrics_host, registry=metrics.registry
        )
    try:
        await run_delivery(settings, config, bootstrap, stop, metrics)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
    return 0
