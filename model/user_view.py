"""How a user's state is shown: read API, `churnstream state` and `replay --state`."""

from __future__ import annotations

from typing import Any

from churnstream.model.user_record import UserRecord


def user_view(record: UserRecord) -> dict[str, Any]:
    state = record.state
    return {
        "user_id": record.user_id,
        "segment": state.segment,
        "churned": state.churned,
        "clock": state.clock,
        "features": state.features(),
        "last_score": record.last or None,
        "pending_labels": len(record.pending) if record.pending is not None else 0,
        "alerts": record.alerts.to_dict(),
    }
