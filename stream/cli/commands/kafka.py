"""`churnstream kafka start|stop|status|jars`: the broker used by the demo and local runs."""

from __future__ import annotations

import argparse
from typing import Any

from churnstream.stream.devtools.kafka_local import LocalKafka, default_home
from churnstream.stream.kafka.broker import resolve_bootstrap
from churnstream.stream.settings import Settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser("kafka", help="start, stop or show the local Kafka broker")
    p.add_argument("action", choices=("start", "stop", "status", "jars"))
    p.add_argument("--port", type=int, default=None, help="broker port (default: a free one)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    home = default_home()
    if args.action == "jars":  # fetch the local broker's jars ahead of time (make kafka-jars)
        print(LocalKafka(home).ensure_jars())
        return 0
    if args.action == "start":
        if args.port is not None:
            kafka = LocalKafka(home, port=args.port)
            print(kafka.status() or kafka.start())
            return 0
        env = {"KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers}
        choice = resolve_bootstrap(env, home=home)
        print(choice.bootstrap)
        return 0
    kafka = LocalKafka(home)
    if args.action == "stop":
        kafka.stop()
        print("stopped")
        return 0
    running = kafka.status()
    if running is None:
        print("not running")
        return 3
    print(running)
    return 0
