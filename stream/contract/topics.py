"""Every topic churnstream reads or writes, by contract name (creation: stream/kafka/admin.py)."""

from __future__ import annotations

from typing import Final

# Logical input name (churnstream.stream.contract.events.EVENT_TYPES key) -> contract topic name.
INPUT_TOPICS: Final[dict[str, str]] = {
    "video_views": "behaviour.video-views",
    "logins": "behaviour.logins",
    "integration_syncs": "behaviour.integration-syncs",
    "document_jobs": "behaviour.document-jobs",
    "value": "business.value",
    "subscriptions": "lifecycle.subscriptions",
}
KIND_BY_TOPIC: Final[dict[str, str]] = {v: k for k, v in INPUT_TOPICS.items()}

SCORES: Final = "churn.risk-scores"
ALERTS: Final = "churn.alerts"
DLQ: Final = "churn.dlq"
# Records that arrived without a key, or keyed by something else than user_id, are sent here
# keyed by user_id so that each user's events meet on the worker that owns the user.
REKEYED: Final = "churn.rekeyed"
EXAMPLES: Final = "churn.examples"
MODELS: Final = "churn.models"
ERASURE: Final = "privacy.erasure"
AUDIT: Final = "churn.audit"
