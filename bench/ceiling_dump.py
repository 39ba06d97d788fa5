"""Dump a replay's labelled examples and judged daily rows as arrays, for offline model fits.

Run: .venv/bin/python bench/ceiling_dump.py --history /tmp/s7.jsonl --out /tmp/s7.npz

One replay as `bench/model_grid.py` records it (daily rows only); written to one `.npz`:
- `ex_x`, `ex_y`, `ex_seg`, `ex_t`, `ex_user`: every example the trainer learned (the full
  feature vector in `FEATURE_NAMES` order, its label, segment, made_at, user);
- `row_x`, `row_seg`, `row_t`, `row_user`, `row_score`: every daily row scored with the model as
  of its boundary, and the replay's own score;
- `row_judged`, `row_label`, `row_oracle`: what `model.evaluation.daily_quality` judges: the
  row counts (user at risk, horizon inside the history), churn within the segment's horizon,
  the oracle's probability (NaN where it has none);
- `life_user`, `life_kind`, `life_t`: the cancels and reactivations the alert policy saw;
- `feature_names`, `segment_features` (JSON), `split` (the history's middle, as model_grid).

`bench/nonlinear_ceiling.py` fits batch models on these (in a scratch environment with
scikit-learn: not a project dependency).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import model_grid as mg
import numpy as np
import orjson

from churnstream.agents import configure
from churnstream.features import FEATURE_NAMES
from churnstream.features.names import SEGMENT_FEATURES
from churnstream.stream.devtools.simulator.judge import SimulatorTruth
from churnstream.stream.devtools.simulator.truth import truth_path
from churnstream.stream.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--history", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    settings = Settings.from_env({"CHURNSTREAM_SCORE_EVENTS": "false"})
    truth = SimulatorTruth.read(truth_path(args.history))
    mg.TRUTH = truth
    began = time.perf_counter()
    rows = mg.record(args.history, settings)
    config = configure.model_config(settings)
    print(f"replayed in {time.perf_counter() - began:.0f} s", flush=True)
    examples = [op[1] for op in mg.TRACE if op[0] == mg.LEARN]
    recorded = [op for op in mg.TRACE if op[0] == mg.ROW]
    life = [op for op in mg.TRACE if op[0] == mg.LIFE]
    # The replay's own score of each recorded row: `rows` holds them per segment in order.
    at = dict.fromkeys(rows, 0)
    replay_score = []
    for op in recorded:
        replay_score.append(rows[op[1]][at[op[1]]][2])
        at[op[1]] += 1
    judged, label, oracle = [], [], []
    for op in recorded:
        seg, ts, user = op[1], op[3], op[4]
        horizon = config.horizon_s(seg)
        ok = truth.at_risk(user, ts) and ts + horizon <= truth.end
        judged.append(ok)
        label.append(ok and truth.churned_within(user, ts, horizon, config.label_mode(seg)))
        o = truth.oracle(user, ts) if ok else None
        oracle.append(np.nan if o is None else o)
    np.savez_compressed(
        args.out,
        ex_x=np.array([e.features for e in examples], dtype=np.float64),
        ex_y=np.array([e.label for e in examples], dtype=bool),
        ex_seg=np.array([e.segment for e in examples]),
        ex_t=np.array([e.made_at for e in examples]),
        ex_user=np.array([e.user_id for e in examples]),
        row_x=np.array([op[2] for op in recorded], dtype=np.float64),
        row_seg=np.array([op[1] for op in recorded]),
        row_t=np.array([op[3] for op in recorded]),
        row_user=np.array([op[4] for op in recorded]),
        row_score=np.array(replay_score),
        row_judged=np.array(judged, dtype=bool),
        row_label=np.array(label, dtype=bool),
        row_oracle=np.array(oracle),
        life_user=np.array([op[1] for op in life]),
        life_kind=np.array([op[2] for op in life]),
        life_t=np.array([op[3] for op in life]),
        feature_names=np.array(FEATURE_NAMES),
        segment_features=np.array(orjson.dumps(SEGMENT_FEATURES).decode()),
        split=np.array(truth.start + (truth.end - truth.start) / 2),
        start=np.array(truth.start),
    )
    print(f"{len(examples):,} examples, {len(recorded):,} rows ({sum(judged):,} judged)")


if __name__ == "__main__":
    main()
