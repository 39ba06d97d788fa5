"""Erasure requests on `privacy.erasure`: `{event_id, user_id, ts}`, made by `churnstream forget`
and read by the erasure agent."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from churnstream.stream.contract.validation import parse_ts

MAX_ID_CHARS = 128


class BadErasureRequest(ValueError):
    """An erasure record that does not follow `{event_id, user_id, ts}`."""


@dataclass(frozen=True, slots=True)
class ErasureRequest:
    event_id: str
    user_id: str
    ts: float

    def to_bytes(self) -> bytes:
        return orjson.dumps({"event_id": self.event_id, "user_id": self.user_id, "ts": self.ts})

    @classmethod
    def from_bytes(cls, value: bytes | None) -> ErasureRequest:
        """Parse and validate a record of `privacy.erasure`; raises BadErasureRequest."""
        try:
            doc = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            raise BadErasureRequest("not_json") from None
        if not isinstance(doc, dict):
            raise BadErasureRequest("not_object")
        for name in ("event_id", "user_id"):
            field = doc.get(name)
            if not isinstance(field, str) or not 1 <= len(field) <= MAX_ID_CHARS:
                raise BadErasureRequest(f"bad_field:{name}")
        ts = parse_ts(doc.get("ts"))
        if ts is None:
            raise BadErasureRequest("bad_field:ts")
        return cls(doc["event_id"], doc["user_id"], ts)
