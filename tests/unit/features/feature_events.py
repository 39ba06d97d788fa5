"""Event factories for the features tests (unique ids, event time relative to a UTC midnight)."""

from __future__ import annotations

import itertools

from churnstream.features import FeatureConfig, UserState
from churnstream.stream.contract.events import (
    DocumentJob,
    Event,
    IntegrationSync,
    Lifecycle,
    Login,
    ValueEvent,
    VideoView,
)

DAY = 86_400.0
D0 = 20_500 * DAY  # 2026-02-16T00:00:00Z, a day edge
UID = "u-1"
_ids = itertools.count()


def _eid() -> str:
    return f"e{next(_ids)}"


def at(day: float, hour: float = 12.0) -> float:
    """Event time `day` days after D0 at `hour` UTC."""
    return D0 + day * DAY + hour * 3600.0


def login(ts: float, success: bool = True, **kw: object) -> Login:
    return Login(event_id=_eid(), user_id=UID, ts=ts, success=success, **kw)  # type: ignore[arg-type]


def view(
    ts: float, watched: float = 60.0, duration: float = 120.0, video: str = "v1", **kw: object
) -> VideoView:
    kw.setdefault("completed", watched >= 0.9 * duration)
    return VideoView(
        event_id=_eid(),
        user_id=UID,
        ts=ts,
        video_id=video,
        watched_s=watched,
        duration_s=duration,
        **kw,
    )  # type: ignore[arg-type]


def sync(
    ts: float,
    ok: bool = True,
    integration: str = "crm",
    latency: float | None = None,
) -> IntegrationSync:
    return IntegrationSync(
        event_id=_eid(), user_id=UID, ts=ts, integration=integration, ok=ok, latency_ms=latency
    )


def job(ts: float, ok: bool = True, documents: int = 1, ms: float | None = None) -> DocumentJob:
    return DocumentJob(
        event_id=_eid(),
        user_id=UID,
        ts=ts,
        job_id=_eid(),
        ok=ok,
        documents=documents,
        processing_ms=ms,
    )


def value(ts: float, amount: float) -> ValueEvent:
    return ValueEvent(event_id=_eid(), user_id=UID, ts=ts, value=amount)


def life(ts: float, event: str, segment: str = "saas", price: float | None = None) -> Lifecycle:
    return Lifecycle(
        event_id=_eid(), user_id=UID, ts=ts, event=event, segment=segment, plan_price=price
    )


def state_of(events: list[Event], config: FeatureConfig | None = None) -> UserState:
    st = UserState.new(UID, config or FeatureConfig())
    for ev in events:
        st.apply(ev)
    return st
