"""One row, one label: do the labelled examples look like the rows churn_risk is decided on?

Run: .venv/bin/python bench/row_skew.py --history /tmp/rs7.jsonl [--markdown]
     (the history and its truth from `churnstream simulate --out /tmp/rs7.jsonl ...`)

One replay as `bench/model_grid.py` records it (daily rows only, `ceiling_dump.py`'s recording),
plus every call of `AlertPolicy.on_score` (the churn_risk decision) with what it returned. Per
segment and per feature of the segment's model (`SEGMENT_FEATURES`), the population stability
index (PSI) of
- (a) the feature vectors of the examples the trainer learned, against
- (b) the daily rows the alert policy judged: every row passed to `on_score` while the user's
  relationship was not stopped (joined to the scored vector by user and boundary), alerting
  or not; and against
- (c) the rows of (b) on which `on_score` raised a churn_risk alert (selected on risk: they are
  expected to differ).
Bins: 10 quantile bins of (a) (tied edges merged, so a feature with few values gets a bin per
value), empty-bin shares floored at EPS. PSI < 0.1 is read as no meaningful shift.

Also printed: (b) restricted to the days (a) covers (labels mature a horizon after the row, so
(a) ends earlier and tenure-like features drift with the calendar alone), a check that each
example is a judged row with the same vector, and an emulation of the design before daily
rows: the labelled rows were then the last event score of a day with activity; emulated here
by the examples with days_since_event == 0 (an emulation only: the old rows also had
partial-day counts, which this does not reproduce), against (b) and (b) over (a)'s days.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import model_grid as mg
import numpy as np

from churnstream.agents import configure
from churnstream.features import FEATURE_NAMES
from churnstream.features.names import SEGMENT_FEATURES
from churnstream.model.alert_policy import AlertMemory, AlertPolicy
from churnstream.stream.devtools.simulator.judge import SimulatorTruth
from churnstream.stream.devtools.simulator.truth import truth_path
from churnstream.stream.settings import Settings

BINS = 10
EPS = 1e-4
TOP = 5

# (user, segment, boundary, judged, raised) per on_score call, in order.
DECISIONS: list[tuple[str, str | None, float, bool, bool]] = []


def _record_decisions() -> Any:
    """Wrap `AlertPolicy.on_score` (class level: the replay builds its policy inside
    `mg.record`); returns the original to restore."""
    original = AlertPolicy.on_score

    def on_score(
        self: AlertPolicy,
        user_id: str,
        segment: str | None,
        ts: float,
        score: float,
        drivers: Any,
        memory: AlertMemory,
        **kw: Any,
    ) -> Any:
        # reach() is what on_score does first (idempotent): the relationship as the row sees it.
        memory.reach(ts)
        judged = not memory.stopped
        alert = original(self, user_id, segment, ts, score, drivers, memory, **kw)
        DECISIONS.append((user_id, segment, ts, judged, alert is not None))
        return alert

    AlertPolicy.on_score = on_score  # type: ignore[method-assign]
    return original


def _f32(vectors: Any) -> np.ndarray:
    """Vectors at the precision the trainer learns them (the pending labels keep float32): the
    scored rows are float64, and a value a rounding apart would land in another quantile bin."""
    return np.array(vectors, dtype=np.float32).reshape(-1, len(FEATURE_NAMES)).astype(np.float64)


def psi(a: np.ndarray, b: np.ndarray) -> float:
    """Population stability index of `b` against `a` on `a`'s quantile bins."""
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    edges = np.unique(np.quantile(a, np.linspace(0, 1, BINS + 1)[1:-1]))
    # Bin i holds edges[i-1] < x <= edges[i]: a value on a tied edge stays in one bin.
    pa = np.bincount(np.searchsorted(edges, a), minlength=len(edges) + 1) / len(a)
    pb = np.bincount(np.searchsorted(edges, b), minlength=len(edges) + 1) / len(b)
    pa, pb = np.maximum(pa, EPS), np.maximum(pb, EPS)
    return float(np.sum((pb - pa) * np.log(pb / pa)))


def compare(a: np.ndarray, b: np.ndarray, names: list[str]) -> dict[str, Any]:
    """PSI per feature (columns of `a` and `b`, named `names`): max, median, top TOP."""
    values = {n: psi(a[:, i], b[:, i]) for i, n in enumerate(names)}
    ranked = sorted(values.items(), key=lambda kv: -kv[1])
    return {
        "max": ranked[0][1],
        "median": float(np.median(list(values.values()))),
        "top": ranked[:TOP],
        "all": values,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--history", type=Path, required=True)
    parser.add_argument("--markdown", action="store_true", help="tables as Markdown")
    args = parser.parse_args()
    # Daily rows only: the labels and churn_risk decisions are the same with event scores.
    settings = Settings.from_env({"CHURNSTREAM_SCORE_EVENTS": "false"})
    mg.TRUTH = SimulatorTruth.read(truth_path(args.history))
    began = time.perf_counter()
    original = _record_decisions()
    try:
        mg.record(args.history, settings)
    finally:
        AlertPolicy.on_score = original  # type: ignore[method-assign]
    budgets = configure.alert_policy(settings).config.daily_budget
    print(f"replayed in {time.perf_counter() - began:.0f} s", flush=True)
    # No daily budget by default: every alert on_score raises is published; with one, (c)
    # would hold candidates the budget may drop.
    assert not budgets, f"budgets {budgets}: (c) would not be the published alerts"

    index = {n: i for i, n in enumerate(FEATURE_NAMES)}
    examples = [op[1] for op in mg.TRACE if op[0] == mg.LEARN]
    scored = {(op[4], op[3]): op for op in mg.TRACE if op[0] == mg.ROW}
    assert len(scored) == sum(op[0] == mg.ROW for op in mg.TRACE), "one row per user and day"
    rows: dict[str, list[Any]] = {}
    raised: dict[str, list[Any]] = {}
    unjudged = 0
    for user, seg, ts, judged, alert in DECISIONS:
        op = scored[(user, ts)]
        assert op[1] == seg
        if not judged:
            unjudged += 1
            continue
        rows.setdefault(seg, []).append(op)
        if alert:
            raised.setdefault(seg, []).append(op)
    # Every example is a judged daily row, with the vector the decision was made on (as the
    # pending labels keep it: float32).
    judged_vec = {(op[4], op[3]): op[2] for ops in rows.values() for op in ops}
    differ = sum(
        not np.array_equal(_f32(judged_vec.get((e.user_id, e.made_at), ())), _f32(e.features))
        for e in examples
    )
    print(
        f"{len(examples):,} examples, {len(scored):,} daily rows, {len(DECISIONS):,} on_score "
        f"calls ({unjudged:,} after a cancel, not judged); examples not a judged row with the "
        f"same vector: {differ}"
    )

    # (c) must be the churn_risk alerts the replay published (its report counts them).
    for seg, seg_report in mg.REPORT["segments"].items():
        published = sum(
            k for kind, k in seg_report["alerts"].items() if kind.startswith("churn_risk/")
        )
        assert published == len(raised.get(seg, [])), (seg, published, len(raised.get(seg, [])))
    print("churn_risk alerts raised by on_score = the replay report's, per segment")

    dse = index["days_since_event"]
    results: dict[str, dict[str, Any]] = {}
    for seg in sorted(rows):
        names = list(SEGMENT_FEATURES.get(seg, FEATURE_NAMES))
        cols = [index[n] for n in names]
        seg_ex = [e for e in examples if e.segment == seg]
        full_a = _f32([e.features for e in seg_ex])
        a = full_a[:, cols]
        b = _f32([op[2] for op in rows[seg]])[:, cols]
        c = _f32([op[2] for op in raised.get(seg, [])])[:, cols]
        last = max(e.made_at for e in seg_ex)
        b_same = _f32([op[2] for op in rows[seg] if op[3] <= last])[:, cols]
        old_a = full_a[full_a[:, dse] == 0][:, cols]
        results[seg] = {
            "n": {"a": len(a), "b": len(b), "c": len(c), "b_same": len(b_same), "old": len(old_a)},
            "a vs b": compare(a, b, names),
            "a vs b, days of a": compare(a, b_same, names),
            "a vs c": compare(a, c, names),
            "old a (emulated) vs b": compare(old_a, b, names),
            "old a (emulated) vs b, days of a": compare(old_a, b_same, names),
        }
    _print(results, args.markdown)


def _print(results: dict[str, dict[str, Any]], markdown: bool) -> None:
    sep = " | " if markdown else "  "
    head = ["segment", "comparison", "rows a", "rows b/c", "max PSI", "median", "top 5 by PSI"]
    lines = [head]
    for seg, r in results.items():
        n = r["n"]
        for key, n_left, n_right in (
            ("a vs b", n["a"], n["b"]),
            ("a vs b, days of a", n["a"], n["b_same"]),
            ("a vs c", n["a"], n["c"]),
            ("old a (emulated) vs b", n["old"], n["b"]),
            ("old a (emulated) vs b, days of a", n["old"], n["b_same"]),
        ):
            q = r[key]
            top = ", ".join(f"{n} {v:.3f}" for n, v in q["top"])
            lines.append(
                [
                    seg,
                    key,
                    f"{n_left:,}",
                    f"{n_right:,}",
                    f"{q['max']:.3f}",
                    f"{q['median']:.3f}",
                    top,
                ]
            )
    if markdown:
        print("\n" + "\n".join(f"| {sep.join(line)} |" for line in lines[:1]))
        print("|" + "---|" * len(head))
        print("\n".join(f"| {sep.join(line)} |" for line in lines[1:]))
    else:
        widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]
        print()
        for line in lines:
            print(sep.join(v.ljust(w) for v, w in zip(line, widths, strict=False)) + sep + line[-1])


if __name__ == "__main__":
    main()
