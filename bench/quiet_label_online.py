"""The online course model trained on quiet-spell labels instead of the product's own.

Run: .venv/bin/python bench/quiet_label_online.py --history /tmp/s7.jsonl --quiet-days 14

One replay recorded as `bench/model_grid.py` does; then the default `ModelConfig` is re-run on
the recording twice: as recorded (the product's course labels, learned at made_at + 7 d), and
with each course example relabelled by `quiet_spells.quiet_spell_labels` and learned only once
that label is known (made_at + 7 d + quiet days, i.e. before the first daily row at or after
it); rows inside a spell that had already begun are not learned. Course daily rows are judged
against the simulator's truth on all rows and from the middle of the history, and their
churn_risk alerts at the default thresholds (as model_grid re-runs them). A measurement
only: the product's labels (model.labels) are unchanged.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import time
from pathlib import Path
from typing import Any

import model_grid as mg
import numpy as np
from quiet_spells import DAY, quiet_spell_labels

from churnstream.agents import configure
from churnstream.features import FEATURE_NAMES
from churnstream.model.alert_policy import AlertConfig
from churnstream.stream.devtools.simulator.judge import SimulatorTruth
from churnstream.stream.devtools.simulator.truth import truth_path
from churnstream.stream.settings import Settings

SEG = "course"


def relabelled_trace(quiet_days: float, horizon_days: float) -> tuple[list[Any], dict[str, int]]:
    """TRACE with course examples relabelled and moved to when their label is known."""
    rows = [op for op in mg.TRACE if op[0] == mg.ROW and op[1] == SEG]
    cancels: dict[str, list[float]] = {}
    for op in mg.TRACE:
        if op[0] == mg.LIFE and op[2] == "cancel":
            cancels.setdefault(op[1], []).append(op[3])
    label, left = quiet_spell_labels(
        list(FEATURE_NAMES),
        np.array([op[4] for op in rows]),
        np.array([op[3] for op in rows]),
        np.array([op[2] for op in rows]),
        cancels,
        horizon_days,
        quiet_days,
    )
    at = {(op[4], op[3]): i for i, op in enumerate(rows)}
    # Where each ROW op sits and its time: a moved example goes before the first row at or
    # after its new due time (as a label released by the watermark would).
    row_pos = [i for i, op in enumerate(mg.TRACE) if op[0] == mg.ROW]
    row_ts = np.maximum.accumulate([mg.TRACE[i][3] for i in row_pos])
    moved: dict[int, list[Any]] = {}
    stats = {"course examples": 0, "relabelled positive": 0, "left out": 0, "unmatched": 0}
    for op in mg.TRACE:
        if op[0] != mg.LEARN or op[1].segment != SEG:
            continue
        ex = op[1]
        stats["course examples"] += 1
        i = at.get((ex.user_id, ex.made_at))
        if i is None:
            stats["unmatched"] += 1
            continue
        if left[i]:
            stats["left out"] += 1
            continue
        stats["relabelled positive"] += bool(label[i])
        due = ex.made_at + (horizon_days + quiet_days) * DAY
        k = bisect.bisect_left(row_ts, due)
        pos = row_pos[k] if k < len(row_pos) else len(mg.TRACE)
        moved.setdefault(pos, []).append(
            (mg.LEARN, dataclasses.replace(ex, label=bool(label[i])), True)
        )
    out: list[Any] = []
    for i, op in enumerate(mg.TRACE):
        out.extend(moved.get(i, ()))
        if op[0] != mg.LEARN or op[1].segment != SEG:
            out.append(op)
    out.extend(moved.get(len(mg.TRACE), ()))
    return out, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--history", type=Path, required=True)
    parser.add_argument("--quiet-days", default="14", help="comma-separated, e.g. 7,14")
    args = parser.parse_args()
    settings = Settings.from_env({"CHURNSTREAM_SCORE_EVENTS": "false"})
    mg.TRUTH = SimulatorTruth.read(truth_path(args.history))
    mg.SPLIT = mg.TRUTH.start + (mg.TRUTH.end - mg.TRUTH.start) / 2
    began = time.perf_counter()
    mg.ROWS = mg.record(args.history, settings)
    mg.BASE = configure.model_config(settings)
    print(f"replayed in {time.perf_counter() - began:.0f} s", flush=True)
    horizon = mg.BASE.horizons_days[SEG]
    late = {SEG: [r for r in mg.ROWS[SEG] if r[1] >= mg.SPLIT]}

    def report(name: str) -> None:
        scores = mg.rerun(mg.BASE)
        late_scores = [
            v for r, v in zip(mg.ROWS[SEG], scores[SEG], strict=True) if r[1] >= mg.SPLIT
        ]
        q_all = mg.judge({SEG: mg.ROWS[SEG]}, {SEG: scores[SEG]})[SEG]
        q_late = mg.judge(late, {SEG: late_scores})[SEG]
        alerts = mg.alert_report(mg.risk_alerts(scores, AlertConfig()))[SEG]
        print(
            f"{name:40} course AUC all rows {mg._f(q_all['auc'])}, from the middle "
            f"{mg._f(q_late['auc'])} (oracle {mg._f(q_all['oracle_auc'])} / "
            f"{mg._f(q_late['oracle_auc'])}); churn_risk alerts at the default thresholds "
            f"precision / recall / silent within 3 d {mg._alerts(alerts)}",
            flush=True,
        )

    original = list(mg.TRACE)
    report("product labels (default)")
    for g in (float(v) for v in args.quiet_days.split(",")):
        mg.TRACE[:], stats = relabelled_trace(g, horizon)
        report(f"quiet >= {g:g} d labels, learned at +{horizon + g:g} d")
        print(f"  {stats}", flush=True)
        mg.TRACE[:] = original


if __name__ == "__main__":
    main()
