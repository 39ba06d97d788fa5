"""Values of the `kind` and `severity` fields of `churn.alerts` records (docs/alerts.md).

Defined here, with the contract, because the model raises them, the worker counts them per
value in its metrics and readers of the topic (tools, benches) select on them.
"""

from __future__ import annotations

from typing import Final

CHURN_RISK: Final = "churn_risk"
ROI_DROP: Final = "roi_drop"
ALERT_KINDS: Final = (CHURN_RISK, ROI_DROP)

WARNING: Final = "warning"
CRITICAL: Final = "critical"
SEVERITIES: Final = (WARNING, CRITICAL)
