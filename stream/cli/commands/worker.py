"""`churnstream worker`: run one Faust worker (scale out by running more)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from dataclasses import fields
from typing import Any

from churnstream.stream.cli.common import CommandError
from churnstream.stream.kafka.client import security_settings
from churnstream.stream.kafka.connect import find_bootstrap
from churnstream.stream.kafka.key_check import key_problem
from churnstream.stream.kafka.security import SecuritySettings
from churnstream.stream.settings import PREFIX, Settings

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "worker",
        help="run a churnstream worker (Faust)",
        description="Run one worker. Its log level is the command's (--log-level, -v or "
        "CHURNSTREAM_LOG_LEVEL).",
    )
    p.set_defaults(handler=run)


def log_security(settings: Settings, security: SecuritySettings, fingerprint: str) -> None:
    """Log the security mode in effect (never a secret), and warn about every setting that
    looks meant for churnstream but is ignored (a misspelled one may switch a protection off)."""
    known = frozenset(PREFIX + f.name.upper() for f in fields(Settings) if f.name != "extra")
    for line in security.warnings({**os.environ, **settings.extra}, known):
        log.warning("%s", line)
    kafka = security.describe()
    if security.uses_ssl:
        kafka += ", TLS" + ("" if security.ssl_check_hostname else " without hostname check")
    pseudo = f"on (key fingerprint {fingerprint})" if security.pseudonym_key else "off"
    advertised = settings.web_advertised_host or settings.web_host
    token = "bearer token required" if security.web_token else "no token (loopback only)"
    signed = "signed" if security.model_signing_key else "not signed (no signing key)"
    log.info(
        "security: Kafka %s; pseudonymisation %s; read API bound to %s:%d, advertised as %s, %s; "
        "model snapshots %s",
        kafka,
        pseudo,
        settings.web_host,
        settings.web_port,
        advertised,
        token,
        signed,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    import faust

    from churnstream.agents.app import create_app

    bootstrap = find_bootstrap(settings)
    app = create_app(settings, bootstrap=bootstrap)
    # Before joining the group: a keyed topic with another partition count, or another
    # pseudonym key than the group's, would split users. A loop of its own, so Faust's worker
    # still finds no loop closed under it.
    security = security_settings(settings)
    fingerprint = security.pseudonymizer().fingerprint
    log_security(settings, security, fingerprint)
    loop = asyncio.new_event_loop()
    try:
        problems = loop.run_until_complete(app.churnstream.partition_problems())
        if not problems:
            problem = loop.run_until_complete(
                key_problem(settings, fingerprint, bootstrap=bootstrap)
            )
            problems = [problem] if problem else []
    finally:
        loop.close()
    if problems:
        reason = "; ".join(problems)
        raise CommandError(f"refusing to start: {reason}: one user would be split in two states")
    log.info("pseudonym key fingerprint %s (the same on every worker of the group)", fingerprint)
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
