"""Does the uplift report find the effect the simulator planted? (issue #19)

Given a simulated history's alerts with the `holdout` flag of an experiment, `plant` treats
every customer of the treatment arm from its first alert on, with the effect of that alert's
action (`effects[code] = 0.3`: the daily churn hazard falls by 30%, times a per-customer
factor uniform in [0.5, 1.5]; actions not listed have none), through `SimConfig.treatments`:
the draws are the same, so the untreated history is the counterfactual. `check` measures the
uplift on the treated world (model/uplift.py; each customer judged on its first alert, the one
whose action treated it) and sets beside each segment x action row the true effect on the same
customers: their churn rate within the horizon without the treatment minus with it.

Used by bench/uplift_sim.py (alerts of a replay) and by the unit test of the done-when.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from churnstream.model.evaluation import alert_hit
from churnstream.model.uplift import UpliftRow, measure
from churnstream.stream.contract.events import DAY_S
from churnstream.stream.contract.validation import parse_ts
from churnstream.stream.devtools.simulator.config import SimConfig
from churnstream.stream.devtools.simulator.generator import ground_truth
from churnstream.stream.devtools.simulator.judge import SimulatorTruth

Alert = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Checked:
    """One row of the uplift report and the true effect on the treatment customers it
    measured (None when none has a known outcome)."""

    row: UpliftRow
    true: float | None

    @property
    def inside(self) -> bool | None:
        """True when the row's 95% interval holds the true effect (None: not measurable)."""
        row = self.row
        if self.true is None or row.ci_low is None or row.ci_high is None:
            return None
        return row.ci_low <= self.true <= row.ci_high


def heterogeneity(user_id: str) -> float:
    """A per-customer multiplier of the effect, uniform in [0.5, 1.5], fixed by the user."""
    digest = hashlib.sha256(f"effect\x1f{user_id}".encode()).digest()
    return 0.5 + int.from_bytes(digest[:8], "big") / 2.0**64


def first_alerts(alerts: Iterable[Alert]) -> list[Alert]:
    """Each customer's first alert (the intervention happens there, with its action)."""
    first: dict[str, Alert] = {}
    for alert in sorted(alerts, key=lambda a: (a["ts"], a["user_id"])):
        first.setdefault(alert["user_id"], alert)
    return list(first.values())


def plant(config: SimConfig, alerts: Iterable[Alert], effects: Mapping[str, float]) -> SimConfig:
    """`config` with every treatment-arm customer treated from its first alert's day."""
    treatments = []
    for alert in sorted(first_alerts(alerts), key=lambda a: a["user_id"]):
        effect = effects.get(alert["action"]["code"], 0.0)
        if alert["holdout"] or effect == 0.0:
            continue
        ts = parse_ts(alert["ts"])
        assert ts is not None
        day = int((ts - config.start) // DAY_S)
        factor = max(0.0, 1.0 - effect * heterogeneity(alert["user_id"]))
        treatments.append((alert["user_id"], day, factor))
    return dataclasses.replace(config, treatments=tuple(treatments))


def check(
    config: SimConfig, alerts: Iterable[Alert], effects: Mapping[str, float]
) -> list[Checked]:
    """Plant the effects, measure the uplift on the treated world, and give each row the
    true effect (`config` is the untreated history)."""
    firsts = first_alerts(alerts)
    untreated = SimulatorTruth(ground_truth(config))
    treated_world = SimulatorTruth(ground_truth(plant(config, firsts, effects)))
    horizons, modes = untreated.truth.horizon_days, untreated.truth.label_modes

    def outcome(truth: SimulatorTruth, alert: Alert) -> bool | None:
        segment = alert["segment"]
        ts = parse_ts(alert["ts"])
        horizon_s = float(alert.get("horizon_days") or horizons[segment]) * DAY_S
        if ts is None or ts + horizon_s > truth.end:
            return None
        return alert_hit(truth, alert["user_id"], ts, horizon_s, modes[segment])

    checked = []
    for row in measure(firsts, lambda a: outcome(treated_world, a)):
        # The treatment customers measured: their first alert is of this segment and action.
        diffs = [
            int(bool(outcome(untreated, a))) - int(bool(treated))
            for a in firsts
            if a["segment"] == row.segment
            and a["action"]["code"] == row.action
            and not a["holdout"]
            and (treated := outcome(treated_world, a)) is not None
        ]
        checked.append(Checked(row, sum(diffs) / len(diffs) if diffs else None))
    return checked


__all__ = ["Checked", "check", "first_alerts", "heterogeneity", "plant"]
