"""Alerts for `churn.alerts`: policy, memory, playbook and messages (public facade).

The implementation lives in small modules: `model.alert_policy` (edge trigger, hysteresis,
cooldown), `model.roi` (ROI rule and Page-Hinkley), `model.playbook` (actions) and
`model.messages` (one-sentence text).
"""

from __future__ import annotations

from churnstream.model.alert_policy import (
    Alert,
    AlertConfig,
    AlertMemory,
    AlertPolicy,
    KindMemory,
    RiskThresholds,
    alert_id,
    top_drivers,
)
from churnstream.model.messages import compose_message, phrase
from churnstream.model.playbook import Action, Driver, Playbook, PlaybookError
from churnstream.model.roi import PageHinkleyDown, RoiReading, read_roi, rule_breach
from churnstream.stream.contract.alerts import ALERT_KINDS, CHURN_RISK, ROI_DROP

__all__ = [
    "ALERT_KINDS",
    "CHURN_RISK",
    "ROI_DROP",
    "Action",
    "Alert",
    "AlertConfig",
    "AlertMemory",
    "AlertPolicy",
    "Driver",
    "KindMemory",
    "PageHinkleyDown",
    "Playbook",
    "PlaybookError",
    "RiskThresholds",
    "RoiReading",
    "alert_id",
    "compose_message",
    "phrase",
    "read_roi",
    "rule_breach",
    "top_drivers",
]
