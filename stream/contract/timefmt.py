"""The one text form of an instant in output records: RFC 3339, UTC, milliseconds, `Z`.

Scores, alerts and dead letters all format their times here, so the same instant reads the
same in every topic (and compares equal as a string). Parsing input times is
`stream.contract.validation.parse_ts`, which accepts more than this writes.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["rfc3339"]


def rfc3339(seconds: float) -> str:
    """Epoch seconds -> "2026-03-01T12:00:00.250Z" (always 3 fraction digits, truncated)."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
