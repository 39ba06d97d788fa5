"""Does `churnstream uplift` find the effect the simulator planted? (issue #19)

Takes a simulated history's alerts (`churnstream replay FILE --alerts ALERTS`), assigns the
holdout as an experiment would (model/experiment.py: the assignment does not change any
decision, so it can be made afterwards), and treats every customer of the treatment arm from
its first alert on, with the effect of that alert's action (`--effect code=0.3`: the daily
churn hazard falls by 30%, times a per-customer factor uniform in [0.5, 1.5]; actions not
listed have none). The simulator replans the history with these treatments
(SimConfig.treatments; the draws are the same, so the untreated history is the
counterfactual), and the uplift report on the treated world (each customer judged on its first
alert, the one whose action treated it) is compared, per segment x action, with the true
effect on the same customers: their churn rate within the horizon without the treatment minus
with it.

Simplification: the alerts are those of the untreated history. Live, the model would learn from
the treated world and alert somewhat differently later on; the measurement itself is the same.

    .venv/bin/python bench/uplift_sim.py --users 700 --days 60 --seed 11 \
        --alerts /tmp/alerts.jsonl --holdout-share 0.5 --effect check_in=0.5 --effect mentor_match=0
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from churnstream.model.evaluation import alert_hit
from churnstream.model.experiment import Experiment
from churnstream.model.uplift import measure
from churnstream.stream.contract.events import DAY_S
from churnstream.stream.contract.validation import parse_ts
from churnstream.stream.devtools.simulator import SimConfig, ground_truth
from churnstream.stream.devtools.simulator.judge import SimulatorTruth


def heterogeneity(user_id: str) -> float:
    """A per-customer multiplier of the effect, uniform in [0.5, 1.5], fixed by the user."""
    digest = hashlib.sha256(f"effect\x1f{user_id}".encode()).digest()
    return 0.5 + int.from_bytes(digest[:8], "big") / 2.0**64


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=700)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--churn-rate", type=float, default=0.25)
    ap.add_argument("--alerts", type=Path, required=True, help="replay --alerts of the history")
    ap.add_argument("--experiment", default="bench-uplift")
    ap.add_argument("--holdout-share", type=float, default=0.5)
    ap.add_argument("--effect", action="append", default=[], help="action=hazard reduction")
    ap.add_argument("--kind", default="churn_risk")
    args = ap.parse_args()
    effects = {k: float(v) for k, v in (e.split("=", 1) for e in args.effect)}
    config = SimConfig(users=args.users, days=args.days, seed=args.seed, churn_rate=args.churn_rate)
    experiment = Experiment(args.experiment, args.holdout_share)
    alerts = []
    for line in args.alerts.read_bytes().splitlines():
        alert = orjson.loads(line)
        if alert["kind"] != args.kind:
            continue
        alert["holdout"] = experiment.is_holdout(alert["user_id"], alert["segment"])
        alerts.append(alert)
    # The intervention happens at each treatment customer's first alert, with its action.
    first: dict[str, dict[str, Any]] = {}
    for alert in sorted(alerts, key=lambda a: a["ts"]):
        first.setdefault(alert["user_id"], alert)
    treatments = []
    for user_id, alert in sorted(first.items()):
        effect = effects.get(alert["action"]["code"], 0.0)
        if alert["holdout"] or effect == 0.0:
            continue
        ts = parse_ts(alert["ts"])
        assert ts is not None
        day = int((ts - config.start) // DAY_S)
        factor = max(0.0, 1.0 - effect * heterogeneity(user_id))
        treatments.append((user_id, day, factor))
    untreated = SimulatorTruth(ground_truth(config))
    treated_world = SimulatorTruth(
        ground_truth(dataclasses.replace(config, treatments=tuple(treatments)))
    )
    horizons, modes = untreated.truth.horizon_days, untreated.truth.label_modes

    def outcome(truth: SimulatorTruth, alert: Mapping[str, Any]) -> bool | None:
        segment = alert["segment"]
        ts = parse_ts(alert["ts"])
        horizon_s = float(alert.get("horizon_days") or horizons[segment]) * DAY_S
        if ts is None or ts + horizon_s > truth.end:
            return None
        return alert_hit(truth, alert["user_id"], ts, horizon_s, modes[segment])

    # Judged on each customer's first alert: the one whose action it was treated with (a later
    # alert of another action would carry the first action's effect).
    firsts = list(first.values())
    rows = measure(firsts, lambda a: outcome(treated_world, a))
    print(
        f"{len(alerts)} {args.kind} alerts, {len(first)} customers, "
        f"{len(treatments)} treated with an effect; holdout share {args.holdout_share}"
    )
    print(
        f"{'segment':8} {'action':22} {'treated':>7} {'holdout':>7} {'measured pp':>11} "
        f"{'95% CI pp':>16} {'true pp':>8}  inside"
    )
    for row in rows:
        # The true effect on the very customers measured: their first alert of this action.
        units = _units(firsts, row.segment, row.action)
        diffs = [
            int(bool(outcome(untreated, a))) - int(bool(outcome(treated_world, a)))
            for a in units
            if outcome(treated_world, a) is not None
        ]
        true = sum(diffs) / len(diffs) if diffs else float("nan")
        if row.uplift is None or row.ci_low is None or row.ci_high is None:
            print(
                f"{row.segment:8} {row.action:22} {row.treated.n:7} {row.holdout.n:7}  "
                "(one arm empty)"
            )
            continue
        inside = row.ci_low <= true <= row.ci_high
        print(
            f"{row.segment:8} {row.action:22} {row.treated.n:7} {row.holdout.n:7} "
            f"{100 * row.uplift:+11.1f} [{100 * row.ci_low:+6.1f}, {100 * row.ci_high:+6.1f}] "
            f"{100 * true:+8.1f}  {'yes' if inside else 'NO'}"
        )


def _units(alerts: list[dict[str, Any]], segment: str, action: str) -> list[dict[str, Any]]:
    """Treatment-arm customers' first alert of `action` in `segment` (as `measure` counts)."""
    first: dict[str, dict[str, Any]] = {}
    for alert in sorted(alerts, key=lambda a: a["ts"]):
        if (
            alert["segment"] == segment
            and alert["action"]["code"] == action
            and not alert["holdout"]
        ):
            first.setdefault(alert["user_id"], alert)
    return list(first.values())


if __name__ == "__main__":
    main()
