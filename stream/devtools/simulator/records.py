"""The simulator's output record and event-time formatting."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

EXPECT_VALID: Final = "valid"
EXPECT_DUPLICATE: Final = "duplicate"
EXPECT_REKEY: Final = "rekey"


@dataclass(slots=True)
class SimRecord:
    """One Kafka record to produce.

    `value` is the contract JSON object of a well-formed record; malformed records carry the exact
    bytes in `raw` and `value` is None. `ts` is the record's event time (epoch seconds), used for
    ordering; a duplicate delivery keeps its original body but arrives at a later `ts`.
    `expect` says how a correct consumer treats it: "valid", "duplicate", "rekey" or the
    validation error code prefix ("not_json", "missing_field", ...).
    """

    topic: str
    key: str | None
    value: dict[str, Any] | None
    raw: bytes | None
    ts: float
    expect: str = EXPECT_VALID


_DATE_CACHE: dict[int, str] = {}


def rfc3339(ts_ms: int) -> str:
    """Millisecond epoch time as an RFC 3339 UTC string ('...T12:00:00.123Z').

    Hand-rolled with a per-day cache because datetime formatting dominated generation time.
    """
    day, ms_of_day = divmod(ts_ms, 86_400_000)
    date = _DATE_CACHE.get(day)
    if date is None:
        date = time.strftime("%Y-%m-%d", time.gmtime(day * 86_400))
        _DATE_CACHE[day] = date
    sec, ms = divmod(ms_of_day, 1000)
    h, rem = divmod(sec, 3600)
    m, s = divmod(rem, 60)
    return f"{date}T{h:02d}:{m:02d}:{s:02d}.{ms:03d}Z"
