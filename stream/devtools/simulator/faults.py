"""Delivery faults mixed into the clean stream: malformed records, unkeyed and duplicate ones.

Each fault record says in `expect` what a correct consumer does with it: the exact validation
error code (as `stream.contract.validation.parse` reports it), "rekey" for a valid body without a
key,
or "duplicate" for a repeated delivery of an earlier event (same event_id).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

import orjson

from churnstream.stream.devtools.simulator.config import (
    DOC_JOBS,
    LIFECYCLE,
    LOGINS,
    SYNCS,
    VALUE,
    VIDEO_VIEWS,
)
from churnstream.stream.devtools.simulator.records import EXPECT_DUPLICATE, EXPECT_REKEY, SimRecord

MAX_BYTES: Final = 65_536
COMMON_REQUIRED: Final = ("event_id", "user_id", "ts")
REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    VIDEO_VIEWS: ("video_id", "watched_s", "duration_s"),
    LOGINS: (),
    SYNCS: ("integration", "status"),
    DOC_JOBS: ("job_id", "status"),
    VALUE: ("value",),
    LIFECYCLE: ("event", "segment"),
}
# topic -> (field, wrong-typed value)
BAD_TYPES: Final[dict[str, tuple[str, object]]] = {
    VIDEO_VIEWS: ("watched_s", "ten minutes"),
    LOGINS: ("success", "yes"),
    SYNCS: ("latency_ms", "fast"),
    DOC_JOBS: ("documents", "3"),
    VALUE: ("value", "12.50"),
    LIFECYCLE: ("plan_price", "99"),
}
OUT_OF_RANGE: Final[dict[str, tuple[str, object]]] = {
    VIDEO_VIEWS: ("duration_s", 0),
    SYNCS: ("records", -3),
    DOC_JOBS: ("documents", 0),
    VALUE: ("value", -10.0),
    LIFECYCLE: ("plan_price", -1.0),
}
BAD_ENUMS: Final[dict[str, tuple[str, object]]] = {
    SYNCS: ("status", "maybe"),
    DOC_JOBS: ("status", "done"),
    LIFECYCLE: ("event", "upgrade"),
    VIDEO_VIEWS: ("segment", "retail"),
}
BAD_TIMESTAMPS: Final = ("2026-13-45T25:61:00Z", "yesterday", "2026-01-05T10:00:00", 1e15)

# The fault kinds; "not_json_utf8" is reported as "not_json" by the parser.
KINDS: Final = (
    "not_json",
    "not_json_utf8",
    "missing_field",
    "bad_type",
    "out_of_range",
    "bad_timestamp",
    "bad_enum",
    "too_large",
    "empty",
    "rekey",
    "duplicate",
)
# Oversized records are costly to store, so only every TOO_LARGE_EVERY-th deck holds one.
TOO_LARGE_EVERY: Final = 8


def _dump(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)


class FaultInjector:
    """Interleaves faults into a time-ordered stream of valid records, keeping the order.

    Kinds are dealt from shuffled decks so that every kind appears once `bad_fraction` is high
    enough for a dozen faults; a kind that does not fit the next record's topic waits for one
    that does.
    """

    def __init__(self, bad_fraction: float, seed: int) -> None:
        self.bad_fraction = bad_fraction
        self.rng = random.Random(f"{seed}/faults")
        self.deck: list[str] = []
        self.decks = 0
        self.pending: str | None = None
        self.recent: deque[SimRecord] = deque(maxlen=512)

    def apply(self, records: Iterable[SimRecord]) -> Iterator[SimRecord]:
        """Yield `records` with faults mixed in (no-op when bad_fraction is 0)."""
        if self.bad_fraction <= 0.0:
            yield from records
            return
        rng = self.rng
        for rec in records:
            if self.pending is None and rng.random() < self.bad_fraction:
                self.pending = self._deal()
            if self.pending is not None:
                fault = self._make(self.pending, rec)
                if fault is not None:
                    self.pending = None
                    if fault is not rec:
                        yield fault
            yield rec
            if rec.expect == "valid" or rec.expect == EXPECT_REKEY:
                self.recent.append(rec)

    def _deal(self) -> str:
        if not self.deck:
            self.decks += 1
            kinds = [k for k in KINDS if k != "too_large" or self.decks % TOO_LARGE_EVERY == 1]
            self.rng.shuffle(kinds)
            self.deck = kinds
        return self.deck.pop()

    def _make(self, kind: str, rec: SimRecord) -> SimRecord | None:
        """The fault record for `kind` based on `rec`; `rec` itself for a re-key; None to wait."""
        value = rec.value
        if value is None:
            return None
        if kind == "rekey":
            rec.key = None
            rec.expect = EXPECT_REKEY
            return rec
        if kind == "duplicate":
            if not self.recent:
                return None
            old = self.rng.choice(self.recent)
            assert old.value is not None
            key = str(old.value["user_id"])
            return SimRecord(old.topic, key, old.value, None, rec.ts, EXPECT_DUPLICATE)
        made = _BUILDERS[kind](self.rng, rec.topic, dict(value))
        if made is None:
            return None
        raw, expect = made
        return SimRecord(rec.topic, rec.key, None, raw, rec.ts, expect)


Builder = Callable[[random.Random, str, dict[str, Any]], "tuple[bytes, str] | None"]


def _not_json(rng: random.Random, topic: str, body: dict[str, Any]) -> tuple[bytes, str]:
    data = _dump(body)
    return data[: rng.randrange(1, len(data) - 1)], "not_json"


def _not_utf8(rng: random.Random, topic: str, body: dict[str, Any]) -> tuple[bytes, str]:
    body["event_id"] = str(body["event_id"]) + "@@"
    return _dump(body).replace(b"@@", b"\xff\xfe"), "not_json"


def _missing(rng: random.Random, topic: str, body: dict[str, Any]) -> tuple[bytes, str]:
    name = rng.choice(COMMON_REQUIRED + REQUIRED[topic])
    body.pop(name, None)
    return _dump(body), f"missing_field:{name}"


def _replace(
    table: dict[str, tuple[str, object]], code: str
) -> Callable[[random.Random, str, dict[str, Any]], tuple[bytes, str] | None]:
    def build(rng: random.Random, topic: str, body: dict[str, Any]) -> tuple[bytes, str] | None:
        if topic not in table:
            return None
        name, bad = table[topic]
        body[name] = bad
        return _dump(body), f"{code}:{name}"

    return build


def _bad_ts(rng: random.Random, topic: str, body: dict[str, Any]) -> tuple[bytes, str]:
    body["ts"] = rng.choice(BAD_TIMESTAMPS)
    return _dump(body), "bad_timestamp"


def _too_large(rng: random.Random, topic: str, body: dict[str, Any]) -> tuple[bytes, str]:
    body["padding"] = "x" * (MAX_BYTES + 100)
    return _dump(body), "too_large"


def _empty(rng: random.Random, topic: str, body: dict[str, Any]) -> tuple[bytes, str]:
    return b"", "empty"


_BUILDERS: Final[dict[str, Builder]] = {
    "not_json": _not_json,
    "not_json_utf8": _not_utf8,
    "missing_field": _missing,
    "bad_type": _replace(BAD_TYPES, "bad_type"),
    "out_of_range": _replace(OUT_OF_RANGE, "out_of_range"),
    "bad_timestamp": _bad_ts,
    "bad_enum": _replace(BAD_ENUMS, "bad_enum"),
    "too_large": _too_large,
    "empty": _empty,
}
