"""Everything churnstream keeps about one user, stored as ONE table value.

One value per user means one changelog record per changed user per flush, and erasure is a
single tombstone. Parts: rolling feature state, pending label snapshots, alert memory, the
last published score (for the read API and the score throttle) and the next daily boundary.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from churnstream.features import FeatureConfig, UserState
from churnstream.model.alerts import AlertMemory
from churnstream.model.labels import PendingLabels

# Format 2 added the next daily boundary (NaN: none); format 1 records decode without one.
_FORMAT: Final = 2
_HEAD_V1 = struct.Struct("<BIII")  # format, len(state), len(pending), len(alerts)
_HEAD = struct.Struct("<BIIId")  # ..., next daily boundary


@dataclass(slots=True)
class UserRecord:
    user_id: str
    state: UserState
    pending: PendingLabels | None = None
    alerts: AlertMemory = field(default_factory=AlertMemory)
    last: dict[str, Any] = field(default_factory=dict)
    """Last published score: ts, score, source, model_version, drivers."""
    next_daily: float | None = None
    """Event time of the user's next daily score; None while not scheduled (gone, cancelled).
    Stored so that a rebalance resumes the same boundaries (engine.Detector.reschedule)."""

    @classmethod
    def new(cls, user_id: str, config: FeatureConfig) -> UserRecord:
        return cls(user_id=user_id, state=UserState.new(user_id, config))

    @property
    def last_scored_ts(self) -> float:
        return float(self.last.get("ts", -math.inf))

    def to_bytes(self) -> bytes:
        state = self.state.to_bytes()
        pending = self.pending.to_bytes() if self.pending is not None and len(self.pending) else b""
        alerts = self.alerts.to_bytes()
        meta = orjson.dumps(self.last) if self.last else b""
        daily = math.nan if self.next_daily is None else self.next_daily
        head = _HEAD.pack(_FORMAT, len(state), len(pending), len(alerts), daily)
        return b"".join((head, state, pending, alerts, meta))

    @classmethod
    def from_bytes(cls, user_id: str, data: bytes, config: FeatureConfig) -> UserRecord:
        fmt = data[0] if data else None
        if fmt == _FORMAT:
            _, n_state, n_pending, n_alerts, daily = _HEAD.unpack_from(data)
            pos = _HEAD.size
        elif fmt == 1:
            _, n_state, n_pending, n_alerts = _HEAD_V1.unpack_from(data)
            daily, pos = math.nan, _HEAD_V1.size
        else:
            raise ValueError(f"unsupported user record format {fmt}")
        state = UserState.from_bytes(data[pos : pos + n_state], config)
        pos += n_state
        pending = PendingLabels.from_bytes(data[pos : pos + n_pending]) if n_pending else None
        pos += n_pending
        alerts = AlertMemory.from_bytes(data[pos : pos + n_alerts])
        pos += n_alerts
        last = orjson.loads(data[pos:]) if len(data) > pos else {}
        return cls(
            user_id=user_id,
            state=state,
            pending=pending,
            alerts=alerts,
            last=last,
            next_daily=None if math.isnan(daily) else daily,
        )
