"""`churnstream topics create|list`: make churnstream's topics and the worker's table
changelog with their retention and compaction settings (idempotent), or show what the broker
has: churnstream's topics (missing ones and wrong partition counts flagged) and the
other topics of this deployment (its topic prefix, Faust's `<app id>-...` topics)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from typing import Any, Final

from churnstream.stream.cli.common import setting_default
from churnstream.stream.kafka.admin import (
    TopicCheck,
    changelog_spec,
    check_topics,
    create_topics,
    existing_topics,
    topic_specs,
)
from churnstream.stream.kafka.connect import find_bootstrap
from churnstream.stream.settings import Settings

EXIT_PROBLEMS: Final = 3
"""`topics list` exit code when a churnstream topic is missing or has the wrong partitions."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "topics",
        help="create churnstream's topics, or list what the broker has",
        description="create: make every missing topic, then wait until each partition has a "
        "serving leader. list: the topics on the broker; exits 3 if one of churnstream's is "
        "missing or has the wrong partition count.",
    )
    p.add_argument("action", choices=("create", "list"))
    p.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="partitions of each input and output topic " + setting_default("partitions"),
    )
    p.add_argument(
        "--replication",
        type=int,
        default=None,
        help="replication factor of created topics " + setting_default("replication"),
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    changes = {}
    if args.partitions is not None:
        changes["partitions"] = args.partitions
    if args.replication is not None:
        changes["replication"] = args.replication
    settings = settings.replace(**changes) if changes else settings
    bootstrap = find_bootstrap(settings)
    # The worker's table changelog too: its compaction and tombstone retention are part of
    # what erasure promises (docs/privacy.md).
    specs = [*topic_specs(settings), changelog_spec(settings)]
    if args.action == "list":
        existing = asyncio.run(existing_topics(settings, bootstrap=bootstrap))
        related = [n for n in existing if is_related(n, settings)]
        checks = check_topics(specs, existing, related)
        for line in render(checks, bootstrap, settings.app_id):
            print(line)
        return EXIT_PROBLEMS if any(c.problem for c in checks) else 0
    created = asyncio.run(create_topics(settings, specs, bootstrap=bootstrap))
    print(f"{len(created)} created, {len(specs) - len(created)} already existed ({bootstrap})")
    return 0


def is_related(name: str, settings: Settings) -> bool:
    """A topic of this deployment: under its topic prefix, or one of Faust's for its app id."""
    return name.startswith(settings.topic_prefix) or name.startswith(f"{settings.app_id}-")


def render(checks: Sequence[TopicCheck], bootstrap: str, app_id: str) -> list[str]:
    """The `topics list` table and a last line that says what to do about problems."""
    width = max([len(c.name) for c in checks] + [5])
    lines = [f"{'topic':{width}}  partitions  status"]
    for c in checks:
        count = "-" if c.partitions is None else str(c.partitions)
        if c.expected is not None:
            status = c.problem or "ok"
        elif c.name.startswith(f"{app_id}-"):
            status = "the worker's own (Faust)"
        else:
            status = "other"
        lines.append(f"{c.name:{width}}  {count:>10}  {status}")
    ours = [c for c in checks if c.expected is not None]
    missing = sum(c.partitions is None for c in ours)
    wrong = sum(c.problem is not None and c.partitions is not None for c in ours)
    summary = f"{len(ours) - missing - wrong} of {len(ours)} churnstream topics ok on {bootstrap}"
    if missing:
        summary += f"; {missing} missing (`churnstream topics create` makes them)"
    if wrong:
        summary += (
            f"; {wrong} with another partition count (set CHURNSTREAM_PARTITIONS to match, "
            "or delete and recreate them)"
        )
    lines.append(summary)
    return lines
