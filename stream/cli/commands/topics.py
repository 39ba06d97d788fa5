"""`churnstream topics create`: every topic of the contract plus internal ones, idempotent."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from churnstream.stream.kafka.admin import create_topics, topic_specs
from churnstream.stream.kafka.connect import find_bootstrap
from churnstream.stream.settings import Settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser("topics", help="create the topics churnstream uses")
    p.add_argument("action", choices=("create", "list"))
    p.add_argument("--partitions", type=int, default=None, help="default: CHURNSTREAM_PARTITIONS")
    p.add_argument("--replication", type=int, default=None)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    changes = {}
    if args.partitions is not None:
        changes["partitions"] = args.partitions
    if args.replication is not None:
        changes["replication"] = args.replication
    settings = settings.replace(**changes) if changes else settings
    if args.action == "list":
        for spec in topic_specs(settings):
            extra = " compacted" if spec.compacted else ""
            print(f"{spec.name:40} partitions={spec.partitions}{extra}")
        return 0
    bootstrap = find_bootstrap(settings)
    created = asyncio.run(create_topics(settings, bootstrap=bootstrap))
    total = len(topic_specs(settings))
    print(f"{len(created)} created, {total - len(created)} already existed ({bootstrap})")
    return 0
