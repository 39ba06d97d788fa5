"""The course label modes measured through `churnstream replay --report` itself (issue 14).

Run: .venv/bin/python bench/quiet_label_replay.py --history /tmp/s7.jsonl --modes either,quiet

For each mode, `churnstream replay HISTORY --scores ... --report ...` runs as a user would run it
(CHURNSTREAM_LABEL_COURSE=<mode>; other CHURNSTREAM_* settings from the environment, e.g.
CHURNSTREAM_ALERTS_CONFIG), judged against the simulator's truth beside the history. Printed
per mode: the report's course numbers (daily AUC vs the oracle on the same rows, churn_risk
alert precision within the horizon, recall, silent dropouts alerted within 3 days) and, from
the scores file, the same AUCs on the daily rows made from `--from-day` on (the steady state,
once labels three weeks late have been learned).

`--sweep 0.1,0.15,...` replays nothing: it re-runs the course churn_risk policy on the daily
rows of the scores files already written, at each warning level (critical max(level, the
default), clear 0.6 x level, as bench/model_grid.py sweeps), with the truth's cancels and
reactivations as the lifecycle, to choose a level (docs/alerts.md: the highest recall with
precision >= 0.43), which a replay with CHURNSTREAM_ALERTS_CONFIG then confirms.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from churnstream.agents import configure
from churnstream.model.alert_policy import (
    DEFAULT_SEGMENT_THRESHOLDS,
    AlertMemory,
    AlertPolicy,
    RiskThresholds,
)
from churnstream.model.evaluation import alert_quality, daily_quality
from churnstream.stream.contract.events import DAY_S
from churnstream.stream.devtools.simulator.judge import SimulatorTruth
from churnstream.stream.devtools.simulator.truth import truth_path
from churnstream.stream.settings import Settings

SEG = "course"
CLI = Path(sys.executable).with_name("churnstream")


def replay(history: Path, out: Path, mode: str, jobs: int) -> tuple[dict[str, Any], float]:
    """Run the CLI; returns the report and its wall seconds."""
    env = {**os.environ, "CHURNSTREAM_LABEL_COURSE": mode}
    cmd = [str(CLI), "replay", str(history), "--log-level", "warning", "--jobs", str(jobs)]
    cmd += ["--scores", str(out / f"scores.{mode}.jsonl"), "--report", str(out / f"{mode}.json")]
    began = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    took = time.perf_counter() - began
    return orjson.loads((out / f"{mode}.json").read_bytes()), took


def daily_rows(scores: Path) -> list[tuple[str, float, float]]:
    """(user_id, ts, score) of the course daily rows in a scores file."""
    rows = []
    with scores.open("rb") as f:
        for line in f:
            r = orjson.loads(line)
            if r["segment"] == SEG and r["trigger"] == "daily":
                ts = dt.datetime.fromisoformat(r["ts"].replace("Z", "+00:00")).timestamp()
                rows.append((r["user_id"], ts, r["score"]))
    return rows


def sweep(rows: list[tuple[str, float, float]], truth: SimulatorTruth, level: float) -> str:
    """The course churn_risk alerts at warning `level`, judged as the report judges them."""
    base = configure.alert_policy(Settings.from_env(os.environ)).config
    critical = max(level, DEFAULT_SEGMENT_THRESHOLDS[SEG].critical)
    levels = {**base.segment_thresholds, SEG: RiskThresholds(level, critical, 0.6 * level)}
    policy = AlertPolicy(dataclasses.replace(base, segment_thresholds=levels))
    ops: list[tuple[float, int, str, float]] = [(ts, 1, u, s) for u, ts, s in rows]
    for u, t in truth.truth.users.items():
        if t.segment != SEG:
            continue
        if t.churn_kind == "cancel" and t.churn_ts is not None:
            ops.append((t.churn_ts, 0, u, 0.0))
        if t.reactivate_ts is not None:
            ops.append((t.reactivate_ts, 2, u, 0.0))
    ops.sort()
    memories: dict[str, AlertMemory] = {}
    alerts = []
    for ts, kind, user, score in ops:
        memory = memories.setdefault(user, AlertMemory())
        if kind == 0:
            policy.on_cancel(memory, ts)
        elif kind == 2:
            policy.on_reactivate(memory, ts)
        elif policy.on_score(user, SEG, ts, score, (), memory) is not None:
            alerts.append((user, ts))
    a = alert_quality(alerts, truth, SEG, 7 * DAY_S, "either")
    return (
        f"warning {level:.2f}: {a['alerts']} alerts, precision {_f(a['precision'])}, "
        f"recall {_f(a['recall'])}, silent within 3 d {_f(a['silent_alerted_within_3d'])}"
    )


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--history", type=Path, required=True)
    parser.add_argument("--modes", default="either,quiet")
    parser.add_argument("--out", type=Path, default=None, help="default: beside the history")
    parser.add_argument("--from-day", type=float, default=60.0)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--tag", default="", help="added to the output names")
    parser.add_argument("--sweep", default="", help="warning levels, e.g. 0.1,0.2 (no replay)")
    args = parser.parse_args()
    out = args.out or args.history.parent / f"{args.history.stem}.labels{args.tag}"
    out.mkdir(parents=True, exist_ok=True)
    truth = SimulatorTruth.read(truth_path(args.history))
    if args.sweep:
        for mode in args.modes.split(","):
            rows = daily_rows(out / f"scores.{mode}.jsonl")
            for level in (float(v) for v in args.sweep.split(",")):
                print(f"{mode:8} {sweep(rows, truth, level)}", flush=True)
        return
    since = truth.start + args.from_day * DAY_S
    for mode in args.modes.split(","):
        report, took = replay(args.history, out, mode, args.jobs)
        seg = report["segments"][SEG]
        t = seg["truth"]
        horizon_s = t["horizon_days"] * DAY_S
        late = [r for r in daily_rows(out / f"scores.{mode}.jsonl") if r[1] >= since]
        q = daily_quality(late, truth, horizon_s, mode)
        a = t["alerts"]
        print(
            f"{mode:8} labels +/- {seg['labels']['positive']}/{seg['labels']['negative']}  "
            f"daily AUC all rows {_f(t['daily']['auc'])} (oracle {_f(t['daily']['oracle_auc'])}, "
            f"{t['daily']['rows']} rows), from day {args.from_day:g} {_f(q['auc'])} "
            f"(oracle {_f(q['oracle_auc'])}, {q['rows']} rows); churn_risk alerts "
            f"{a['alerts']}: precision {_f(a['precision'])}, recall {_f(a['recall'])}, "
            f"silent within 3 d {_f(a['silent_alerted_within_3d'])}; replay {took:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
