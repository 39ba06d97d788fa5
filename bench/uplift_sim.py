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

The planting and the truth are `churnstream.stream.devtools.simulator.uplift_truth` (also used
by tests/unit/test_uplift_truth.py). Simplification: the alerts are those of the untreated
history. Live, the model would learn from the treated world and alert somewhat differently
later on; the measurement itself is the same.

    .venv/bin/python bench/uplift_sim.py --users 700 --days 60 --seed 11 \
        --alerts /tmp/alerts.jsonl --holdout-share 0.5 --effect check_in=0.5 --effect mentor_match=0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from churnstream.model.experiment import Experiment
from churnstream.stream.devtools.simulator import SimConfig
from churnstream.stream.devtools.simulator.uplift_truth import check, first_alerts


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
    firsts = first_alerts(alerts)
    treated = sum(
        1 for a in firsts if not a["holdout"] and effects.get(a["action"]["code"], 0.0) != 0.0
    )
    print(
        f"{len(alerts)} {args.kind} alerts, {len(firsts)} customers, "
        f"{treated} treated with an effect; holdout share {args.holdout_share}"
    )
    print(
        f"{'segment':8} {'action':22} {'treated':>7} {'holdout':>7} {'measured pp':>11} "
        f"{'95% CI pp':>16} {'true pp':>8}  inside"
    )
    for checked in check(config, alerts, effects):
        row, true = checked.row, checked.true
        if row.uplift is None or row.ci_low is None or row.ci_high is None or true is None:
            print(
                f"{row.segment:8} {row.action:22} {row.treated.n:7} {row.holdout.n:7}  "
                "(one arm empty)"
            )
            continue
        print(
            f"{row.segment:8} {row.action:22} {row.treated.n:7} {row.holdout.n:7} "
            f"{100 * row.uplift:+11.1f} [{100 * row.ci_low:+6.1f}, {100 * row.ci_high:+6.1f}] "
            f"{100 * true:+8.1f}  {'yes' if checked.inside else 'NO'}"
        )


if __name__ == "__main__":
    main()
