"""Choose the online model's settings on one simulated history, report them on another.

Run: .venv/bin/python bench/model_grid.py --history /tmp/s7.jsonl [--jobs 2] [--json FILE]
     (the history and its truth from `churnstream simulate --out /tmp/s7.jsonl ...`)
     --only 1,10 runs those candidates; --only @FILE waits for FILE to name them, so a report
     seed's replay can start while the tuning seed's grid still runs (docs/model.md: seed 7
     2,000 x 120 all candidates, seed 11 5,000 x 120 --only @FILE with 4,10).

One replay of the history (`configure.replay`, as `churnstream replay --report` runs it) records
what the model side sees, in order: every labelled example the inline trainer learns (and
whether it closes a release), every snapshot installed into the scorer, every daily row scored
with the model as of its boundary. None of that depends on the model's settings (rows, labels
and release order come from the events, the snapshot cadence from counts), so each candidate
`ModelConfig` is then run over the recording with a real `Trainer` and `Scorer`, snapshots
going through the codec, and its daily rows are judged by `model.evaluation.daily_quality`
against the simulator's truth, as the replay report judges the published rows. The candidate
equal to the default must give the replay's own rows (printed: max |score - replay's| 0), and
its churn_risk alerts (re-run per user on the recorded rows, cancels and reactivations) the
report's. Alerts are also swept over warning levels (LEVELS) for the threshold choice.

Also printed per segment: the oracle's AUC on the same rows, and a batch logistic fit (numpy,
Newton steps) trained on the labelled rows made before the history's middle and scored on the
rows after it, beside the online model and the oracle on those later rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import time
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from churnstream.agents import configure
from churnstream.features import FEATURE_NAMES
from churnstream.features.names import SEGMENT_FEATURES
from churnstream.model.alert_policy import (
    DEFAULT_SEGMENT_THRESHOLDS,
    AlertConfig,
    AlertMemory,
    AlertPolicy,
    RiskThresholds,
)
from churnstream.model.config import ModelConfig
from churnstream.model.evaluation import alert_quality, daily_quality
from churnstream.model.labels import Example
from churnstream.model.replay_input import read_records
from churnstream.model.scoring import Scorer
from churnstream.model.trainer import Trainer
from churnstream.stream.contract.events import DAY_S
from churnstream.stream.devtools.simulator.judge import SimulatorTruth
from churnstream.stream.devtools.simulator.truth import truth_path
from churnstream.stream.settings import Settings

LEARN, INSTALL, ROW, LIFE = 0, 1, 2, 3

# (name, ModelConfig changes): the first is the default before issue 14, the fourth today's.
CANDIDATES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("sgd 0.01 (before)", {"optimizer": "sgd", "learning_rate": 0.01, "regime_cuts": ()}),
    ("sgd 0.03", {"optimizer": "sgd", "learning_rate": 0.03, "regime_cuts": ()}),
    ("adagrad 0.02", {"optimizer": "adagrad", "learning_rate": 0.02, "regime_cuts": ()}),
    ("adagrad 0.05", {"optimizer": "adagrad", "learning_rate": 0.05, "regime_cuts": ()}),
    ("adagrad 0.1", {"optimizer": "adagrad", "learning_rate": 0.1, "regime_cuts": ()}),
    ("sgd 0.01 cuts 1,3", {"optimizer": "sgd", "learning_rate": 0.01, "regime_cuts": (1.0, 3.0)}),
    (
        "adagrad 0.02 cuts 1,3",
        {"optimizer": "adagrad", "learning_rate": 0.02, "regime_cuts": (1.0, 3.0)},
    ),
    (
        "adagrad 0.05 cuts 1,3",
        {"optimizer": "adagrad", "learning_rate": 0.05, "regime_cuts": (1.0, 3.0)},
    ),
    (
        "adagrad 0.1 cuts 1,3",
        {"optimizer": "adagrad", "learning_rate": 0.1, "regime_cuts": (1.0, 3.0)},
    ),
    ("adagrad 0.05 cuts 1", {"optimizer": "adagrad", "learning_rate": 0.05, "regime_cuts": (1.0,)}),
    (
        "adagrad 0.05 cuts 1,3,7",
        {"optimizer": "adagrad", "learning_rate": 0.05, "regime_cuts": (1.0, 3.0, 7.0)},
    ),
    (
        "adagrad 0.05 cuts 1,3 l2 1e-3",
        {"optimizer": "adagrad", "learning_rate": 0.05, "regime_cuts": (1.0, 3.0), "l2": 1e-3},
    ),
    (
        "adagrad 0.05 cuts 1,3 l2 1e-2",
        {"optimizer": "adagrad", "learning_rate": 0.05, "regime_cuts": (1.0, 3.0), "l2": 1e-2},
    ),
)

# The recording, shared with the forked workers (copy on write).
TRACE: list[tuple[Any, ...]] = []
TRUTH: SimulatorTruth | None = None
BASE: ModelConfig | None = None
SNAPSHOT_EVERY = 500
LEVELS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


def record(history: Path, settings: Settings) -> dict[str, list[tuple[str, float, float]]]:
    """Replay `history` once, filling TRACE; returns the replay's own daily rows per segment."""
    replay = configure.replay(settings, wall_clock=lambda: 0.0, truth=TRUTH)
    scorer, trainer = replay.scorer, replay.trainer
    score, install, learn, close = (
        scorer.score,
        scorer.install_snapshot,
        trainer.learn,
        trainer.close,
    )
    rows: dict[str, list[tuple[str, float, float]]] = {}
    current_user: list[str] = [""]

    def learn_rec(example: Example) -> Any:
        # The features as an array: a third of a list's memory over some 10^5 examples.
        kept = dataclasses.replace(example, features=array("d", example.features))
        TRACE.append((LEARN, kept, False, example))
        return learn(example)

    def close_rec(example: Example) -> bool:
        op = TRACE[-1]
        assert op[0] == LEARN and op[3] is example
        TRACE[-1] = (LEARN, op[1], True, None)
        return close(example)

    def install_rec(data: bytes) -> Any:
        model = install(data)
        TRACE.append((INSTALL, model.segment))
        return model

    def score_rec(segment: str, x: Any, as_of: float | None = None) -> Any:
        s = score(segment, x, as_of)
        if as_of is not None:
            vector = array("d", [x[n] for n in FEATURE_NAMES])
            TRACE.append((ROW, segment, vector, as_of, current_user[0]))
            rows.setdefault(segment, []).append((current_user[0], as_of, s.score))
        return s

    policy = replay.detector.alerts
    on_cancel, on_reactivate = policy.on_cancel, policy.on_reactivate

    def cancel_rec(memory: Any, ts: float) -> None:
        TRACE.append((LIFE, current_user[0], "cancel", ts))
        on_cancel(memory, ts)

    def reactivate_rec(memory: Any, ts: float) -> None:
        TRACE.append((LIFE, current_user[0], "reactivate", ts))
        on_reactivate(memory, ts)

    policy.on_cancel, policy.on_reactivate = cancel_rec, reactivate_rec  # type: ignore[method-assign]

    trainer.learn, trainer.close = learn_rec, close_rec  # type: ignore[method-assign]
    scorer.install_snapshot, scorer.score = install_rec, score_rec  # type: ignore[method-assign]
    # The row's user: the engine scores inside _daily(rec, ...); wrap it to know whose row.
    detector = replay.detector
    daily = detector._daily

    def daily_rec(rec: Any, boundary: float) -> Any:
        current_user[0] = rec.user_id
        return daily(rec, boundary)

    lifecycle = detector._lifecycle

    def lifecycle_rec(rec: Any, event: Any) -> Any:
        current_user[0] = rec.user_id
        return lifecycle(rec, event)

    detector._daily = daily_rec  # type: ignore[method-assign]
    detector._lifecycle = lifecycle_rec  # type: ignore[method-assign]
    report = replay.run(read_records(history))
    REPORT.update(report)
    TRACE[:] = [(LEARN, op[1], op[2]) if op[0] == LEARN else op for op in TRACE]
    global SNAPSHOT_EVERY
    SNAPSHOT_EVERY = trainer.snapshot_every
    return rows


def rerun(
    config: ModelConfig, sources: dict[str, list[str]] | None = None
) -> dict[str, list[float]]:
    """Scores of the recorded rows with `config`, per segment; `sources`, if given, receives
    what served each (`"rules"` or `"model"`)."""
    trainer = Trainer(config, FEATURE_NAMES, SNAPSHOT_EVERY)
    scorer = Scorer(config, FEATURE_NAMES)
    scores: dict[str, list[float]] = {}
    for op in TRACE:
        if op[0] == LEARN:
            trainer.learn(op[1])
            if op[2]:
                trainer.close(op[1])
        elif op[0] == INSTALL:
            scorer.install_snapshot(trainer.snapshot(op[1]))
        elif op[0] == ROW:
            x = dict(zip(FEATURE_NAMES, op[2], strict=True))
            s = scorer.score(op[1], x, op[3])
            scores.setdefault(op[1], []).append(s.score)
            if sources is not None:
                sources.setdefault(op[1], []).append(s.source)
    return scores


def risk_alerts(scores: dict[str, list[float]], config: AlertConfig) -> dict[str, list[Any]]:
    """churn_risk alerts `(user_id, ts)` per segment that `config` raises on the rows scored
    `scores` (no daily budget: every candidate is published, as by default)."""
    policy = AlertPolicy(config)
    memories: dict[str, AlertMemory] = {}
    at = dict.fromkeys(scores, 0)
    out: dict[str, list[Any]] = {s: [] for s in scores}
    for op in TRACE:
        if op[0] == ROW:
            seg, ts, user = op[1], op[3], op[4]
            score = scores[seg][at[seg]]
            at[seg] += 1
            memory = memories.setdefault(user, AlertMemory())
            if policy.on_score(user, seg, ts, score, (), memory) is not None:
                out[seg].append((user, ts))
        elif op[0] == LIFE:
            memory = memories.setdefault(op[1], AlertMemory())
            (policy.on_cancel if op[2] == "cancel" else policy.on_reactivate)(memory, op[3])
    return out


def alert_report(alerts: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    assert TRUTH is not None and BASE is not None
    return {
        s: alert_quality(a, TRUTH, s, BASE.horizon_s(s), BASE.label_mode(s))
        for s, a in alerts.items()
    }


def level_config(warning: float) -> AlertConfig:
    """Every segment warned at `warning`, cleared at 0.6 x it, critical at the default or the
    warning if higher (the sweep's thresholds)."""
    levels = {
        s: RiskThresholds(warning, max(warning, t.critical), round(0.6 * warning, 3))
        for s, t in DEFAULT_SEGMENT_THRESHOLDS.items()
    }
    return AlertConfig(segment_thresholds=levels)


def tuned_alerts(scores: dict[str, list[float]]) -> dict[str, Any]:
    """Per segment: the alerts at the default thresholds, then at each warning level of LEVELS
    (clear at 0.6 x warning, critical the default or the warning if higher), from which
    docs/alerts.md's rule picks the warning (highest recall with precision >= 0.43)."""
    out: dict[str, Any] = {"default": alert_report(risk_alerts(scores, AlertConfig()))}
    sweep: dict[str, list[tuple[float, dict[str, Any]]]] = {s: [] for s in scores}
    for w in LEVELS:
        q = alert_report(risk_alerts(scores, level_config(w)))
        for s in scores:
            sweep[s].append((w, q[s]))
    out["sweep"] = sweep
    return out


def judge(
    rows: dict[str, list[tuple[str, float, float]]], scores: dict[str, list[float]]
) -> dict[str, dict[str, Any]]:
    assert TRUTH is not None and BASE is not None
    out = {}
    for seg, seg_rows in sorted(rows.items()):
        judged = [(u, ts, s) for (u, ts, _), s in zip(seg_rows, scores[seg], strict=True)]
        out[seg] = daily_quality(judged, TRUTH, BASE.horizon_s(seg), BASE.label_mode(seg))
    return out


def candidate(item: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """One candidate's AUCs on all rows and on the rows from SPLIT (beside the batch fit)."""
    assert BASE is not None
    began = time.perf_counter()
    scores = rerun(dataclasses.replace(BASE, **item[1]))
    late_rows = {s: [r for r in rows if r[1] >= SPLIT] for s, rows in ROWS.items()}
    late_scores = {
        s: [v for r, v in zip(ROWS[s], scores[s], strict=True) if r[1] >= SPLIT] for s in ROWS
    }
    differ = max(abs(v - r[2]) for s in ROWS for r, v in zip(ROWS[s], scores[s], strict=True))
    return {
        "name": item[0],
        "alerts": tuned_alerts(scores),
        "all": judge(ROWS, scores),
        "late": judge(late_rows, late_scores),
        "max_diff_from_replay": differ,
        "seconds": time.perf_counter() - began,
    }


ROWS: dict[str, list[tuple[str, float, float]]] = {}
SPLIT = 0.0
REPORT: dict[str, Any] = {}


def batch_fit(split: float) -> dict[str, dict[str, Any]]:
    """Per segment: a logistic fit on the examples made before `split`, AUC on rows after."""
    assert TRUTH is not None and BASE is not None
    out: dict[str, dict[str, Any]] = {}
    examples: dict[str, list[Example]] = {}
    for op in TRACE:
        if op[0] == LEARN and op[1].made_at < split:
            examples.setdefault(op[1].segment, []).append(op[1])
    index = {n: i for i, n in enumerate(FEATURE_NAMES)}
    for seg, exs in sorted(examples.items()):
        cols = [index[n] for n in SEGMENT_FEATURES.get(seg, FEATURE_NAMES)]
        x = np.array([[e.features[c] for c in cols] for e in exs], dtype=float)
        y = np.array([e.label for e in exs], dtype=float)
        w = _fit(x, y)
        later = [(u, ts, s) for u, ts, s in ROWS[seg] if ts >= split]
        xs = [op[2] for op in TRACE if op[0] == ROW and op[1] == seg and op[3] >= split]
        xr = np.array([[v[c] for c in cols] for v in xs], dtype=float)
        batch = list(_predict(w, xr))
        horizon, mode = BASE.horizon_s(seg), BASE.label_mode(seg)
        out[seg] = {
            "train_rows": len(exs),
            "batch": daily_quality(
                [(u, ts, s) for (u, ts, _), s in zip(later, batch, strict=True)],
                TRUTH,
                horizon,
                mode,
            ),
        }
    return out


def _standardize(x: np.ndarray, clip: float = 3.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    z = (x - mean) / std
    return (np.clip(z, -clip, clip) if clip else z), mean, std


def _fit(
    x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 25, clip: float = 3.0
) -> tuple[Any, ...]:
    """Logistic fit by Newton steps on standardised inputs capped at +-clip (0: no cap, a
    linear rule in raw units): (weights per standardised input + intercept, mean, std)."""
    z, mean, std = _standardize(x, clip)
    a = np.hstack([z, np.ones((len(z), 1))])
    w = np.zeros(a.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(a @ w)))
        grad = a.T @ (p - y) + l2 * len(y) * w
        hess = (a * (p * (1 - p))[:, None]).T @ a + l2 * len(y) * np.eye(a.shape[1])
        w -= np.linalg.solve(hess, grad)
    return w, mean, std


def _predict(model: tuple[Any, ...], x: np.ndarray) -> np.ndarray:
    w, mean, std = model
    z = np.clip((x - mean) / std, -3, 3)
    return 1 / (1 + np.exp(-(np.hstack([z, np.ones((len(z), 1))]) @ w)))


def _f(v: float | None) -> str:
    return "    -" if v is None else f"{v:.3f}"


def main(argv: Sequence[str] | None = None) -> None:
    global TRUTH, BASE, ROWS, SPLIT
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--history", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="write every number here")
    parser.add_argument("--only", default="", help="comma-separated candidate numbers (1-based)")
    args = parser.parse_args(argv)
    # Daily rows only: the rows, their labels and churn_risk alerts are the same with event
    # scores (they feed the read API and roi_drop), and the replay takes half the time.
    settings = Settings.from_env({"CHURNSTREAM_SCORE_EVENTS": "false"})
    TRUTH = SimulatorTruth.read(truth_path(args.history))
    SPLIT = TRUTH.start + (TRUTH.end - TRUTH.start) / 2
    began = time.perf_counter()
    ROWS = record(args.history, settings)
    BASE = configure.model_config(settings)
    n_rows = sum(map(len, ROWS.values()))
    n_examples = sum(op[0] == LEARN for op in TRACE)
    print(
        f"{args.history.name}: replayed in {time.perf_counter() - began:.0f} s, "
        f"{n_rows:,} daily rows, {n_examples:,} examples",
        flush=True,
    )
    picked = CANDIDATES
    only = args.only
    if only.startswith("@"):  # candidates named in a file, once it exists (chosen meanwhile)
        choice = Path(only[1:])
        deadline = time.monotonic() + 7200
        while not choice.exists() and time.monotonic() < deadline:
            time.sleep(5)
        only = choice.read_text().strip()
    if only:
        picked = tuple(CANDIDATES[int(i) - 1] for i in only.split(","))
    segs = sorted(ROWS)
    replay_q = judge(ROWS, {s: [r[2] for r in ROWS[s]] for s in segs})
    late_rows = {s: [r for r in ROWS[s] if r[1] >= SPLIT] for s in segs}
    late_q = judge(late_rows, {s: [r[2] for r in late_rows[s]] for s in segs})
    fits = batch_fit(SPLIT)

    def line(name: str, q: dict[str, dict[str, Any]], key: str = "auc", tail: str = "") -> str:
        return f"{name:32}" + "".join(f"{_f(q[s][key]):>8}" for s in segs) + tail

    print(f"\nall daily rows judged (AUC){'':5}" + "".join(f"{s:>8}" for s in segs), flush=True)
    print(line("the replay itself", replay_q))
    print(line("oracle, same rows", replay_q, "oracle_auc"))
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        results = []
        for r in pool.imap(candidate, picked, chunksize=1):
            results.append(r)
            tail = f"  {r['seconds']:.0f} s, max |score - replay's| {r['max_diff_from_replay']:.2g}"
            print(line(r["name"], r["all"], tail=tail), flush=True)
    print("\nchurn_risk alerts, default thresholds: precision / recall / silent within 3 d")
    print(
        f"{'the replay report itself':32}"
        + "".join(f"{_alerts(REPORT['segments'][s]['truth']['alerts']):>24}" for s in segs)
    )
    for r in results:
        d = r["alerts"]["default"]
        print(f"{r['name']:32}" + "".join(f"{_alerts(d[s]):>24}" for s in segs))
    day = (SPLIT - TRUTH.start) / DAY_S
    print(f"\nrows from day {day:.0f} (batch fit on the examples made before)")
    print(line("oracle", late_q, "oracle_auc"))
    print(line("batch fit", {s: fits[s]["batch"] for s in segs}))
    print(line("the replay itself", late_q))
    for r in results:
        print(line(r["name"], r["late"]))
    if args.json:
        args.json.write_bytes(
            orjson.dumps(
                {
                    "replay": replay_q,
                    "late": late_q,
                    "batch": fits,
                    "candidates": results,
                    "report": REPORT,
                },
                option=orjson.OPT_NON_STR_KEYS,
            )
        )


def _alerts(q: dict[str, Any]) -> str:
    return f"{_f(q['precision'])}/{_f(q['recall'])}/{_f(q['silent_alerted_within_3d'])}"


if __name__ == "__main__":
    main()
