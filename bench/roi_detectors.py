"""Compare ROI-drop triggers: the threshold/baseline rule vs Page-Hinkley on daily ROI_7d.

Synthetic customers pay 1 per day and get noisy daily value around a base ROI in [2, 4]
(so a 25-40% drop stays above the absolute ROI threshold of 1.0 and only the relative
triggers can see it). Half the series get a planted drop of 25-40% on day 45 of 90; the
other half are stable. Every day the features are rebuilt and fed through AlertPolicy.on_roi.

The baseline is the ROI of the 21 days before the last 7 (model.roi). For the simulator, where
drops are planted among realistic accounts, see bench/alert_quality.py.

Usage: .venv/bin/python bench/roi_detectors.py [--series 200] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import statistics
from dataclasses import dataclass

from churnstream.model.alerts import AlertConfig, AlertMemory, AlertPolicy
from churnstream.stream.contract.events import DAY_S

T0 = 1_772_323_200.0  # 2026-03-01T00:00:00Z
DAYS = 90
DROP_DAY = 45
HORIZON = 21  # a detection later than this after the drop counts as missed


@dataclass(slots=True)
class Result:
    detected: int = 0
    missed: int = 0
    delays: list[int] | None = None
    early_alarms: int = 0  # alerts before the drop on drop series
    stable_alarms: int = 0  # alerts on stable series
    stable_series_alarmed: int = 0


def daily_values(rng: random.Random, drop: float | None) -> list[float]:
    base = rng.uniform(2.0, 4.0)
    out = []
    for day in range(DAYS):
        level = base * (1.0 - drop) if drop is not None and day >= DROP_DAY else base
        out.append(level * rng.gammavariate(4.0, 0.25))  # mean `level`, cv 0.5
    return out


def features_at(values: list[float], day: int) -> dict[str, float]:
    v7 = sum(values[max(0, day - 6) : day + 1])
    v28 = sum(values[max(0, day - 27) : day + 1])
    cost_7d, cost_28d = float(min(7, day + 1)), float(min(28, day + 1))
    return {
        "value_7d": v7,
        "cost_7d": cost_7d,
        "value_28d": v28,
        "cost_28d": cost_28d,
        "value_events_28d": cost_28d,
        "tenure_days": float(day + 1),
        "trend_value": min(4.0, v7 / (v28 / 4)) if v28 else 1.0,
    }


def alert_days(policy: AlertPolicy, values: list[float]) -> list[int]:
    memory = AlertMemory()
    days = []
    for day in range(DAYS):
        ts = T0 + day * DAY_S + 12 * 3600
        if policy.on_roi("u", "saas", ts, features_at(values, day), memory) is not None:
            days.append(day)
    return days


def evaluate(config: AlertConfig, n: int, seed: int) -> Result:
    policy = AlertPolicy(config)
    rng = random.Random(seed)
    res = Result(delays=[])
    for _ in range(n):
        drop_series = daily_values(rng, rng.uniform(0.25, 0.40))
        days = alert_days(policy, drop_series)
        res.early_alarms += sum(d < DROP_DAY for d in days)
        after = [d - DROP_DAY for d in days if DROP_DAY <= d <= DROP_DAY + HORIZON]
        if after:
            res.detected += 1
            res.delays.append(after[0])
        else:
            res.missed += 1
        stable = alert_days(policy, daily_values(rng, None))
        res.stable_alarms += len(stable)
        res.stable_series_alarmed += bool(stable)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    configs = {
        "rule (default)": AlertConfig(),
        "rule (drop 0.4, clear 1.1)": AlertConfig(roi_drop=0.4, roi_clear_factor=1.1),
        "rule (drop 0.25)": AlertConfig(roi_drop=0.25),
        **{
            f"page_hinkley (lambda {lam:g})": AlertConfig(
                roi_detector="page_hinkley", ph_threshold=lam
            )
            for lam in (1.0, 3.0, 6.0)
        },
    }
    print(
        f"{args.series} drop series (25-40% on day {DROP_DAY}) + {args.series} stable, "
        f"{DAYS} days each; detection window {HORIZON} days"
    )
    print(
        f"{'detector':28} {'detected':>9} {'median delay d':>15} {'early alarms':>13} "
        f"{'stable alarms':>14} {'stable series alarmed':>22}"
    )
    for name, config in configs.items():
        r = evaluate(config, args.series, args.seed)
        delay = f"{statistics.median(r.delays):.1f}" if r.delays else "-"
        print(
            f"{name:28} {r.detected / args.series:>9.0%} {delay:>15} {r.early_alarms:>13} "
            f"{r.stable_alarms:>14} {r.stable_series_alarmed / args.series:>22.0%}"
        )


if __name__ == "__main__":
    main()
