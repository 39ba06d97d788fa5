"""Right to be forgotten: the agent that erases a user on the worker that owns the user.

`privacy.erasure` is keyed by user_id and has as many partitions as the input topics and the
`users` table, so Faust assigns each of its partitions to the worker holding the same table
partition. Everything churnstream keeps about a user (features, dedupe memory, pending label
snapshots, alert cooldowns, last score) is ONE table value (model.user_record), so erasure is:
1. `repo.delete(user_id)`: drop the cached record and delete the table key; its tombstone is
   sent to the table's changelog (a recovering worker does not bring the user back);
2. drop the user from the detector's due index (in memory only);
3. publish an `erased` record to `churn.audit` (the id, or its pseudonym, and no other data);
4. count it in `churnstream_erasures_total`.
The process agent changes records only under the same state lock, so an erasure cannot
interleave with half a batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from churnstream.agents.context import WorkerContext
from churnstream.stream.contract import topics as t
from churnstream.stream.contract.dlq import dlq_record
from churnstream.stream.contract.erasure import BadErasureRequest, ErasureRequest
from churnstream.stream.contract.validation import Invalid
from churnstream.stream.kafka.client import security_settings
from churnstream.stream.settings import Settings

log = logging.getLogger(__name__)

ERASED_USER = "erased_user"


async def erase_user(ctx: WorkerContext, user_id: str) -> bool:
    """Delete everything this worker keeps about `user_id`; True if a stored record existed.

    Under the state lock, and the tombstone is on the broker before it returns: a state write
    of the same user sent before it can not land after it (same producer, same partition).
    """
    async with ctx.state_lock:
        tombstone = ctx.repo.delete(user_id)
        ctx.detector.forget(user_id)
        if tombstone is not None:
            ctx.repo.written(await ctx.outputs.send([tombstone]))
    return tombstone is not None


def audit_record(request: ErasureRequest, found: bool, erased_at: float) -> bytes:
    """The `churn.audit` value: what was done for which request; no personal data but the id."""
    return orjson.dumps(
        {
            "kind": "erased",
            "user_id": request.user_id,
            "request_id": request.event_id,
            "requested_ts": request.ts,
            "found": found,
            "erased_at": erased_at,
        }
    )


def block_list(settings: Settings) -> Callable[[str], bool]:
    """`is_blocked(user_id)` from CHURNSTREAM_BLOCKED_USERS_FILE (read once, at start-up).

    Ids are compared after pseudonymisation, so the file may hold raw ids either way.
    """
    blocked = security_settings(settings).blocked_users()
    if blocked:
        log.info("block list: %d erased users whose later events are dead-lettered", len(blocked))
    return blocked.__contains__


def blocked_event() -> Invalid:
    """The DLQ reason for an event of a blocked (erased) user."""
    return Invalid(ERASED_USER, "user is on the erasure block list")


def register(ctx: WorkerContext) -> None:
    app, settings, metrics = ctx.app, ctx.settings, ctx.metrics
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    requests = app.topic(settings.topic(t.ERASURE), **raw)
    audit = app.topic(settings.topic(t.AUDIT), **raw)
    # A request made without the key (or by another tool) may name the raw id: erase the
    # pseudonym it stands for, as `forget` would have published it.
    stored_id = security_settings(settings).pseudonymizer().stored_id

    async def dead_letter(message: Any, error: str) -> None:
        await ctx.dlq.send(
            key=None,  # the key may be a user id: keep personal data out of the DLQ
            value=dlq_record(
                source_topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                error=error,
                detail="invalid erasure request",
                payload=b"",
                max_bytes=settings.max_record_bytes,
                received_at=time.time(),
            ),
        )
        metrics.dlq(error.split(":", 1)[0]).inc()

    @app.agent(requests, name="churnstream-erasure", concurrency=1)
    async def erase(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            try:
                request = ErasureRequest.from_bytes(message.value)
            except BadErasureRequest as exc:
                await dead_letter(message, str(exc))
                continue
            user_id = stored_id(request.user_id)
            key = user_id.encode()
            if message.key != key or user_id != request.user_id:
                # Not on the partition that owns the user (or naming a raw id): send it there,
                # under the stored id, and handle it then.
                moved = ErasureRequest(request.event_id, user_id, request.ts)
                await requests.send(key=key, value=moved.to_bytes())
                continue
            found = await erase_user(ctx, request.user_id)
            await audit.send(key=key, value=audit_record(request, found, time.time()))
            metrics.erasures.inc()
            # No user id in the log: the audit topic is the record of who was erased.
            log.info("erasure request %s done (state found: %s)", request.event_id, found)
