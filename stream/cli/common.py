"""What every `churnstream` sub-command shares: help layout, the log-level options, CLI errors.

The log level has one source: the `log_level` setting (`CHURNSTREAM_LOG_LEVEL`), which
`--log-level LEVEL` or its shortcut `-v` (debug) override, before or after the sub-command.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from churnstream.stream.errors import ChurnstreamError
from churnstream.stream.settings import LOG_LEVELS, PREFIX, Settings


class CommandError(ChurnstreamError, RuntimeError):
    """A sub-command cannot do what was asked (bad option, missing input); the message says
    why."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, unless there is none to show (None, False) or the help text
    already says it (options backed by a setting name their variable, see `setting_default`)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            not action.option_strings
            or "%(default)" in text
            or "(default:" in text
            # Identity: 0 and 0.0 are defaults worth showing, though they equal False.
            or action.default is None
            or action.default is False
            or action.default is argparse.SUPPRESS
        ):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """ArgumentParser with `HelpFormatter`; sub-parsers are made of this class too."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(**kwargs)


def setting_default(name: str) -> str:
    """`(default: $CHURNSTREAM_NAME, else VALUE)` for the help of an option backed by a setting."""
    field = next(f for f in fields(Settings) if f.name == name)
    value = field.default if field.default is not MISSING else None
    # A % would start a format specifier in argparse's help expansion.
    return f"(default: ${PREFIX}{name.upper()}, else {value})".replace("%", "%%")


def add_log_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """`--log-level LEVEL` and `-v/--verbose` (= `--log-level debug`), into one `log_level`.

    The sub-commands' copies default to SUPPRESS: argparse would otherwise let a sub-parser's
    default overwrite a value given before the sub-command.
    """
    default = None if top_level else argparse.SUPPRESS
    group = parser.add_argument_group("logging")
    group.add_argument(
        "--log-level",
        dest="log_level",
        type=str.lower,
        choices=LOG_LEVELS,
        default=default,
        metavar="LEVEL",
        help=f"log level of this command and of the worker: {', '.join(LOG_LEVELS)} "
        + setting_default("log_level"),
    )
    group.add_argument(
        "-v",
        "--verbose",
        dest="log_level",
        action="store_const",
        const="debug",
        default=default,
        help="debug logging (same as --log-level debug)",
    )


def check_output(path: Path | str | None, option: str) -> None:
    """Fail before any work if the directory `option` would write `path` into is missing (a
    replay would otherwise run to the end and then fail on its report)."""
    if path is None:
        return
    parent = Path(path).parent
    if not parent.is_dir():
        raise CommandError(f"{option} {path}: directory {parent} does not exist")


def cores() -> int:
    """CPUs this process may run on."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def add_by_user_option(parser: argparse.ArgumentParser) -> None:
    """`--by-user` of `replay` and `backfill` (model/partitioned.py)."""
    parser.add_argument(
        "--by-user",
        action="store_true",
        help="partition the users over the --jobs processes (a coordinator parses and learns "
        "every label, in lockstep at day boundaries): the same output as one process; not "
        "with a daily alert budget (then one process). Pays on free cores: BENCHMARKS.md",
    )


def add_jobs_option(parser: argparse.ArgumentParser) -> None:
    """`--jobs N` of `replay` and `backfill` (model/score_pool.py)."""

    def positive(text: str) -> int:
        if not text.isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
        return int(text)

    parser.add_argument(
        "--jobs",
        type=positive,
        default=cores(),
        metavar="N",
        help="processes (default: the CPUs, here %(default)s); N - 1 of them work out the event "
        "scores written to a scores file, the same scores as one process. Learning, daily rows "
        "and alerts run in event-time order in one process",
    )
