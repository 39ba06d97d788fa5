"""`churnstream` command line: one sub-command per job, implementations in stream/cli/commands/."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from churnstream.stream.settings import Settings, SettingsError

Handler = Callable[[argparse.Namespace, Settings], int]


def build_parser() -> argparse.ArgumentParser:
    from churnstream.stream.cli.commands import (
        demo,
        forget,
        kafka,
        pseudonym,
        replay,
        simulate,
        state,
        tail,
        topics,
        worker,
    )

    parser = argparse.ArgumentParser(
        prog="churnstream",
        description="Real-time churn detection on Kafka. Settings: CHURNSTREAM_* environment "
        "variables (see README), KAFKA_BOOTSTRAP_SERVERS for the broker.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (kafka, topics, worker, simulate, tail, replay, state, demo, forget, pseudonym):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"churnstream: bad setting: {exc}", file=sys.stderr)
        return 2
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:  # our errors carry a message meant for people
        print(f"churnstream: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
