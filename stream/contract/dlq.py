"""Dead-letter records for `churn.dlq` (pure: builds and reads bytes, no Kafka).

Record format (contract): `{source_topic, partition, offset, error, detail, payload_b64,
received_at}` plus the optional `payload_size` (original length in bytes) and
`payload_truncated` (true when `payload_b64` holds only the start of the value). `payload_b64`
is null for a null (tombstone) value.

A dead-letter record must always fit on its topic: a record the broker refuses would hold the
worker's inputs for good. So the payload is cut to fit `record_limit` bytes for the whole
record (the DLQ topic's `max.message.bytes` less the batch overhead), not only to the input
size limit; the base64 of a value is a third larger than the value.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from typing import Any, Final

import orjson

from churnstream.stream.contract.timefmt import rfc3339

__all__ = [
    "DLQ_FIELDS",
    "RECORD_LIMIT",
    "dead_letter_of",
    "decode_dlq",
    "dlq_record",
    "pseudonymised",
    "refit",
]

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
# The broker's default `max.message.bytes` is 1 MiB + 12 for a whole record batch; records
# of a DLQ topic with no lower limit stay under this, with room for the batch's own overhead.
RECORD_LIMIT: Final = 2**20 - 4096


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
    record_limit: int = RECORD_LIMIT,
) -> bytes:
    """Serialize one dead-letter record as JSON bytes of at most `record_limit` bytes (any
    limit above the ~1 KiB the other fields can take).

    `payload` is cut to its first `max_bytes` bytes, and further until the whole record fits
    `record_limit` (`payload_truncated` then says so, `payload_size` gives the original
    length); `received_at` (epoch seconds, wall clock of the worker) becomes RFC 3339 UTC.
    """
    doc: dict[str, Any] = {
        "source_topic": source_topic,
        "partition": partition,
        "offset": offset,
        "error": error,
        "detail": detail[:_DETAIL_MAX_CHARS],
        "payload_b64": None,
        "received_at": rfc3339(received_at),
        "payload_size": None if payload is None else len(payload),
        "payload_truncated": False,
    }
    return _with_payload(doc, payload, max_bytes, record_limit)


def refit(value: bytes, record_limit: int) -> bytes:
    """The dead-letter record `value` with its payload cut further to fit `record_limit`
    bytes (for a DLQ topic whose limit is lower than the one it was built for); `payload_size`
    still gives the original length. Raises `ValueError` if `value` is not a DLQ record."""
    doc = decode_dlq(value)
    payload = doc.pop("payload")
    cut = doc.get("payload_truncated") is True
    doc["payload_b64"], doc["payload_truncated"] = None, cut
    return _with_payload(doc, payload, len(payload or b""), record_limit)


def _with_payload(
    doc: dict[str, Any], payload: bytes | None, max_bytes: int, record_limit: int
) -> bytes:
    if payload is not None:
        # Room left for the base64 once the rest is written (the flag's `true` is one byte
        # shorter than `false`; the two quotes of the string replace `null`'s four bytes).
        room = record_limit - len(orjson.dumps(doc))
        keep = min(len(payload), max(max_bytes, 0), max(room, 0) // 4 * 3)
        doc["payload_b64"] = base64.b64encode(payload[:keep]).decode()
        doc["payload_truncated"] = doc["payload_truncated"] or keep < len(payload)
    return orjson.dumps(doc)


def dead_letter_of(
    message: Any,
    error: str,
    detail: str,
    *,
    max_bytes: int,
    keep_data: bool = True,
    pseudonymise: Callable[[str], str] | None = None,
    record_limit: int = RECORD_LIMIT,
) -> tuple[bytes | None, bytes]:
    """(key, value) of the DLQ record for a consumed Kafka `message` (topic, partition, offset,
    key, value), received now. `keep_data=False` leaves key and payload out (an erased user's
    data must not be kept there). `pseudonymise` (pseudonymisation on, a record still under
    its raw id) replaces the key and the payload's `user_id` with their pseudonyms, or drops a
    payload whose user id cannot be found (`pseudonymised` says which). The key counts against
    `record_limit` too."""
    key = message.key if keep_data else None
    payload = message.value if keep_data else None
    if pseudonymise is not None:
        if key is not None:
            key = pseudonymise(key.decode("utf-8", "replace")).encode()
        payload, note = pseudonymised(payload, pseudonymise)
        detail = f"{detail} ({note})" if note else detail
    value = dlq_record(
        source_topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        error=error,
        detail=detail,
        payload=payload,
        max_bytes=max_bytes,
        received_at=time.time(),
        record_limit=record_limit - (len(key) if key else 0),
    )
    return key, value


def pseudonymised(
    payload: bytes | None, pseudonymise: Callable[[str], str]
) -> tuple[bytes | None, str]:
    """(payload, note): a JSON object with its string `user_id` replaced by the pseudonym, or
    None when no such field can be found (not JSON, not an object, no string `user_id`): the
    raw id may then sit anywhere in the bytes, so none of them is kept."""
    if payload is None:
        return None, ""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("user_id"), str):
        return None, "payload dropped: no user_id to pseudonymise"
    doc["user_id"] = pseudonymise(doc["user_id"])
    return orjson.dumps(doc), "user_id pseudonymised"


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
