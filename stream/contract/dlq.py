"""Dead-letter records for `churn.dlq` (pure: builds and reads bytes, no Kafka).

Record format (contract): `{source_topic, partition, offset, error, detail, payload_b64,
received_at}` plus the optional `payload_size` (original length in bytes, so a reader can tell
a cut payload from a whole one). `payload_b64` is null for a null (tombstone) value.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any, Final

import orjson

from churnstream.stream.contract.timefmt import rfc3339

__all__ = ["DLQ_FIELDS", "dead_letter_of", "decode_dlq", "dlq_record"]

DLQ_FIELDS: Final = (
    "source_topic",
    "partition",
    "offset",
    "error",
    "detail",
    "payload_b64",
    "received_at",
)
# A detail is meant to be one short sentence; cap it so a bug cannot bloat DLQ records.
_DETAIL_MAX_CHARS: Final = 512


def dlq_record(
    *,
    source_topic: str,
    partition: int,
    offset: int,
    error: str,
    detail: str,
    payload: bytes | None,
    max_bytes: int,
    received_at: float,
) -> bytes:
    """Serialize one dead-letter record as JSON bytes.

    `payload` is cut to its first `max_bytes` bytes before base64 so a DLQ record stays
    bounded; `received_at` (epoch seconds, wall clock of the worker) becomes RFC 3339 UTC.
    """
    doc: dict[str, Any] = {
        "source_topic": source_topic,
        "partition": partition,
        "offset": offset,
        "error": error,
        "detail": detail[:_DETAIL_MAX_CHARS],
        "payload_b64": (
            None if payload is None else base64.b64encode(payload[: max(max_bytes, 0)]).decode()
        ),
        "received_at": rfc3339(received_at),
        "payload_size": None if payload is None else len(payload),
    }
    return orjson.dumps(doc)


def dead_letter_of(
    message: Any, error: str, detail: str, *, max_bytes: int, keep_data: bool = True
) -> tuple[bytes | None, bytes]:
    """(key, value) of the DLQ record for a consumed Kafka `message` (topic, partition, offset,
    key, value), received now. `keep_data=False` leaves key and payload out (an erased user's
    data must not be kept there)."""
    value = dlq_record(
        source_topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        error=error,
        detail=detail,
        payload=message.value if keep_data else None,
        max_bytes=max_bytes,
        received_at=time.time(),
    )
    return (message.key if keep_data else None), value


def decode_dlq(value: bytes) -> dict[str, Any]:
    """Parse a DLQ record and add `payload` (the decoded bytes, or None).

    Raises `ValueError` if `value` is not a DLQ record (not JSON, not an object, a contract
    field missing, or `payload_b64` not valid base64).
    """
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError("DLQ record is not JSON") from exc
    if not isinstance(doc, dict):
        raise ValueError("DLQ record is not a JSON object")
    missing = [name for name in DLQ_FIELDS if name not in doc]
    if missing:
        raise ValueError(f"DLQ record lacks {', '.join(missing)}")
    b64 = doc["payload_b64"]
    if b64 is None:
        doc["payload"] = None
    elif isinstance(b64, str):
        try:
            doc["payload"] = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("DLQ payload_b64 is not valid base64") from exc
    else:
        raise ValueError("DLQ payload_b64 must be a string or null")
    return doc
