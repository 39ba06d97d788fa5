"""`churnstream forget USER_ID`: ask the workers to erase a user (right to be forgotten).

Publishes one erasure request `{event_id, user_id, ts}` to `privacy.erasure`, keyed by the
user id so it reaches the worker that owns the user's state (agents/erasure.py). With
pseudonymisation on, the pseudonym is published, never the raw id: USER_ID may be the raw id
(pseudonymised here) or its pseudonym `p-...` (published as given). The request's format is
part of the contract (stream/contract/erasure.py).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

from churnstream.stream.cli.common import CommandError
from churnstream.stream.contract import topics as t
from churnstream.stream.contract.erasure import MAX_ID_CHARS, ErasureRequest
from churnstream.stream.settings import Settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser("forget", help="erase a user's state on the workers (privacy request)")
    p.add_argument(
        "user_id",
        help="the user id as producers send it, or its pseudonym p-... when pseudonymisation is on",
    )
    p.add_argument("--event-id", default=None, help="request id (default: a random UUID)")
    p.set_defaults(handler=run)


def request_for(user_id: str, settings: Settings, event_id: str | None = None) -> ErasureRequest:
    """The request for `user_id`, with a raw id pseudonymised when a pseudonym key is set (a
    pseudonym is published as given)."""
    from churnstream.stream.kafka.client import security_settings

    if not 1 <= len(user_id) <= MAX_ID_CHARS:
        raise CommandError(f"a user id has 1 to {MAX_ID_CHARS} characters")
    stored_id = security_settings(settings).pseudonymizer().stored_id(user_id)
    # Wall clock on purpose: an erasure is an operator action, not a business event.
    return ErasureRequest(event_id or str(uuid.uuid4()), stored_id, time.time())


async def publish(request: ErasureRequest, bootstrap: str, settings: Settings) -> None:
    """Send `request` to the erasure topic with acks=all and wait for the acknowledgement."""
    from aiokafka import AIOKafkaProducer

    from churnstream.stream.kafka.client import client_options

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        request_timeout_ms=15000,
        **client_options(settings),
    )
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.topic(t.ERASURE), request.to_bytes(), key=request.user_id.encode()
        )
    finally:
        await producer.stop()


def run(args: argparse.Namespace, settings: Settings) -> int:
    from churnstream.stream.kafka.connect import find_bootstrap

    request = request_for(args.user_id, settings, args.event_id)
    bootstrap = find_bootstrap(settings)
    asyncio.run(publish(request, bootstrap, settings))
    print(
        f"erasure request {request.event_id} published to {settings.topic(t.ERASURE)} "
        f"({bootstrap}); the owning worker erases the user and audits it on "
        f"{settings.topic(t.AUDIT)}"
    )
    return 0
