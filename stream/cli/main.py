"""`churnstream` command line: one sub-command per job, implementations in stream/cli/commands/.

Expected errors (bad settings or files, no broker, ...) end here: the command prints one line,
`churnstream: <what is wrong>`, and exits non-zero, without a traceback. They are the
`ChurnstreamError`s of the stream layer, the domain's `PlaybookError`, file-system errors and a
broker that cannot be reached.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from churnstream.model.playbook import PlaybookError
from churnstream.stream.cli.common import Parser, add_log_options
from churnstream.stream.errors import ChurnstreamError
from churnstream.stream.kafka.security import SecurityError
from churnstream.stream.settings import Settings, SettingsError

Handler = Callable[[argparse.Namespace, Settings], int]

# Exit codes: 1 a command failed, 2 bad usage or settings (like argparse), 130 interrupted.
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _version() -> str:
    try:
        return version("churnstream")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    from churnstream.stream.cli.commands import (
        backfill,
        deliver,
        demo,
        forget,
        kafka,
        model,
        pseudonym,
        replay,
        simulate,
        state,
        tail,
        topics,
        uplift,
        worker,
    )

    parser = Parser(
        prog="churnstream",
        description="Real-time churn detection on Kafka. Settings: CHURNSTREAM_* environment "
        "variables (see README), KAFKA_BOOTSTRAP_SERVERS for the broker.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    add_log_options(parser, top_level=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        kafka,
        topics,
        worker,
        simulate,
        tail,
        deliver,
        uplift,
        replay,
        backfill,
        model,
        state,
        demo,
        forget,
        pseudonym,
    ):
        module.add_parser(sub)
    for command in sub.choices.values():
        add_log_options(command, top_level=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.log_level is not None:  # the command line wins over CHURNSTREAM_LOG_LEVEL
            settings = settings.replace(log_level=args.log_level)
    except ChurnstreamError as exc:
        _report(exc, debug=args.log_level == "debug")
        return EXIT_USAGE
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (
        ChurnstreamError,
        PlaybookError,
        OSError,
        KafkaConnectionError,
        KafkaTimeoutError,
    ) as exc:
        _report(exc, debug=settings.log_level.lower() == "debug")
        return EXIT_FAILED


def _report(exc: BaseException, *, debug: bool) -> None:
    """One line on stderr; a multi-line message's details (a log tail, a tool's output) follow
    only at debug level."""
    first, _, details = message(exc).partition("\n")
    hint = " (details with -v)" if details and not debug else ""
    print(f"churnstream: {first}{hint}", file=sys.stderr)
    if details and debug:
        print(details, file=sys.stderr)


def message(exc: BaseException) -> str:
    """The operator's message of an expected error."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, PlaybookError):
        return f"playbook {exc}"
    if isinstance(exc, SettingsError | SecurityError):
        return f"bad setting: {exc}"
    if isinstance(exc, KafkaConnectionError | KafkaTimeoutError):
        return f"cannot reach Kafka: {exc}"
    text = str(exc).strip()
    return text or type(exc).__name__


if __name__ == "__main__":
    raise SystemExit(main())
