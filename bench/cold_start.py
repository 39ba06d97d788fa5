"""Cold start (issue 14): the served score and churn_risk alerts of a deployment's first days
against its steady state, and rules fitted to the rows the rules serve.

Run (docs/alerts.md "Cold start"; seed 7 to choose, seed 11 to report):
    .venv/bin/churnstream simulate --users 2000 --days 60 --seed 7 --out /tmp/cs7.jsonl
    .venv/bin/churnstream simulate --users 2000 --days 60 --seed 11 --out /tmp/cs11.jsonl
    .venv/bin/python bench/cold_start.py --history /tmp/cs7.jsonl --fit /tmp/cs_rules.json
    .venv/bin/python bench/cold_start.py --history /tmp/cs11.jsonl --rules /tmp/cs_rules.json
(the truth beside each history, `/tmp/cs7.truth.json`, is found by `truth_path`).

One replay of the history as `churnstream replay --report` runs it, recorded by
`bench/model_grid.py` (daily rows only). Each rule set is then re-run over the recording with a
real `Trainer` and `Scorer` (`model_grid.rerun`: the model side does not depend on the rules,
so only the rows the rules serve change) and its churn_risk alerts re-decided by the default
alert policy (`model_grid.risk_alerts`). Rule sets: `DEFAULT_RULES` (which must give the replay
report's own cold-start numbers: checked and printed) and the `--fit` / `--rules` ones; each
also alone (min_labels never reached: no model serves). On a history without churn
(`simulate --churn-rate 0 --roi-drop-fraction 0`) every alert is a false alarm: the rate per
1,000 rows is what a rule set costs customers who are fine (docs/alerts.md "Cold start").
Per segment and phase, first COLD_START_DAYS (days 1-14) and from STEADY_FROM_DAYS (day 42 on,
`model.evaluation`'s phases), it prints:
- AUC of the served daily scores against churn within the segment's horizon, the oracle's AUC
  on the same rows and the rows' churn rate (`model.evaluation.daily_quality`);
- churn_risk alerts per 1,000 daily rows (user-days at risk as the product sees them) and their
  precision within the horizon (`model.evaluation.cold_start`, as the replay report);
- the share of rows the rules served;
and the alerts of days 1-14 at each warning level of `model_grid.LEVELS`.

`--fit FILE` fits, per segment, a rule of FIXED (as DEFAULT_RULES sets it) and at most
MAX_FEATURES readable features on the judged rows the rules served (features picked by
univariate AUC in their risk direction, a correlated one skipped, one whose fitted sign turns
against its direction dropped), weights rounded to two significant digits in log-odds per raw
unit, centers the median of the non-churning rows (break-even for ROI), so a contribution above
0 reads as risk; bias logit(base rate) as the default rules. Written as JSON
(`ModelConfig.from_dict`'s `rules`); `--rules FILE` evaluates such a file.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import model_grid as mg
import numpy as np
import orjson

from churnstream.agents import configure
from churnstream.features import FEATURE_NAMES
from churnstream.features.names import ROI_UNKNOWN, SEGMENT_FEATURES
from churnstream.model.alert_policy import AlertConfig
from churnstream.model.config import DEFAULT_RULES, ModelConfig, RulesParams
from churnstream.model.evaluation import (
    COLD_START_DAYS,
    STEADY_FROM_DAYS,
    cold_start,
    daily_quality,
)
from churnstream.model.quality import exact_roc_auc
from churnstream.model.rules import RulesScore
from churnstream.stream.contract.events import DAY_S
from churnstream.stream.devtools.simulator.judge import SimulatorTruth
from churnstream.stream.devtools.simulator.truth import truth_path
from churnstream.stream.settings import Settings

MAX_FEATURES: Final = 5
MAX_CORRELATION: Final = 0.7  # a candidate this correlated with a chosen feature is skipped
# Not health signals (time since signup, price, what is known): they would explain a score
# with "history days 5", not with anything a customer did.
CONTEXT: Final = frozenset(
    {
        "tenure_days",
        "history_days",
        "plan_price",
        "days_to_renewal",
        "renewal_known",
        "roi_known",
    }
)
# Kept as DEFAULT_RULES set it, not fitted: what alerts a customer who went silent. The rows of
# a customer already gone are not at risk, so the judged rows a fit learns from barely hold
# silence, yet an alert after a dropout's last activity is a hit (model.evaluation.alert_hit).
FIXED: Final = "days_since_event"
# The direction in which each readable feature means risk, by name: a fitted rule keeps only
# features whose churners on the tuning seed lean the same way, so that a positive
# contribution reads as risk in an explanation ("30% of syncs failing", "watch time down").
# Mean durations (sync latency, processing time) are left out: they read 0 with no sync or job
# in the window, which a linear rule would take for the fastest, safest value.
RISK_UP: Final = (
    "days_since_",
    "_ratio_",
    "failed_logins_",
    "abandoned_",
    "seeks_per_min_",
    "rewinds_per_min_",
    "pauses_per_min_",
    "processing_per_doc_",
)
RISK_DOWN: Final = (
    "active_days_",
    "trend_",
    "watched_fraction_",
    "roi_",
    "distinct_",
    "logins_",
    "watch_minutes_",
    "videos_",
    "syncs_",
    "value_",
    "jobs_",
    "documents_",
)
FIRST: Final = f"first_{COLD_START_DAYS:g}_days"
STEADY: Final = f"from_day_{STEADY_FROM_DAYS:g}"

Rows = dict[str, list[tuple[str, float, float]]]


def risk_direction(name: str) -> float:
    """+1 if a higher `name` means more risk, -1 if less, 0 if neither is plain (not used)."""
    if name in CONTEXT:
        return 0.0
    padded = name + "_"
    if any(k in padded for k in RISK_UP):
        return 1.0
    if any(padded.startswith(k) for k in RISK_DOWN):
        return -1.0
    return 0.0


def candidates(segment: str) -> list[str]:
    """Readable features of `segment` with a plain risk direction: the raw count behind each
    `log_` input; no context, not FIXED."""
    out = []
    for name in SEGMENT_FEATURES.get(segment, FEATURE_NAMES):
        raw = name.removeprefix("log_")
        if raw in FEATURE_NAMES and raw != FIXED and risk_direction(raw) and raw not in out:
            out.append(raw)
    return out


def phases(truth: SimulatorTruth) -> dict[str, tuple[float, float]]:
    return {
        FIRST: (truth.start, truth.start + COLD_START_DAYS * DAY_S),
        STEADY: (truth.start + STEADY_FROM_DAYS * DAY_S, truth.end),
    }


def evaluate(rows: Rows, config: ModelConfig) -> dict[str, dict[str, Any]]:
    """Per segment and phase: served AUC, rules share, alert rate and precision of `config`."""
    truth, base = mg.TRUTH, mg.BASE
    assert truth is not None and base is not None
    sources: dict[str, list[str]] = {}
    scores = mg.rerun(config, sources)
    alerts = mg.risk_alerts(scores, AlertConfig())
    out: dict[str, dict[str, Any]] = {}
    for seg, seg_rows in sorted(rows.items()):
        horizon, mode = base.horizon_s(seg), base.label_mode(seg)
        row_ts = [ts for _, ts, _ in seg_rows]
        judged = cold_start(alerts[seg], row_ts, truth, horizon, mode)
        out[seg] = {"rate_ratio": judged["rate_ratio"]}
        for phase, (lo, hi) in phases(truth).items():
            picked = [i for i, ts in enumerate(row_ts) if lo <= ts < hi]
            served = [(seg_rows[i][0], seg_rows[i][1], scores[seg][i]) for i in picked]
            q = daily_quality(served, truth, horizon, mode)
            rules = sum(sources[seg][i] == "rules" for i in picked)
            out[seg][phase] = {
                **judged[phase],
                "auc": q["auc"],
                "oracle_auc": q["oracle_auc"],
                "judged_rows": q["rows"],
                "churn_rate": q["positives"] / q["rows"] if q["rows"] else None,
                "rules_share": rules / len(picked) if picked else None,
            }
        out[seg]["max_diff"] = None
        if config == base:
            out[seg]["max_diff"] = max(
                (abs(s - r[2]) for r, s in zip(seg_rows, scores[seg], strict=True)), default=0.0
            )
    return out


def level_sweep(rows: Rows, config: ModelConfig) -> dict[str, list[tuple[float, Any]]]:
    """Per segment: alerts of days 1-14 (rate, precision) at each warning of model_grid.LEVELS."""
    truth, base = mg.TRUTH, mg.BASE
    assert truth is not None and base is not None
    scores = mg.rerun(config)
    out: dict[str, list[tuple[float, Any]]] = {s: [] for s in rows}
    for w in mg.LEVELS:
        alerts = mg.risk_alerts(scores, mg.level_config(w))
        for seg, seg_rows in rows.items():
            row_ts = [ts for _, ts, _ in seg_rows]
            q = cold_start(alerts[seg], row_ts, truth, base.horizon_s(seg), base.label_mode(seg))
            out[seg].append((w, q))
    return out


def fit_rules(rows: Rows, base: ModelConfig) -> dict[str, RulesParams]:
    """Per segment, a readable rule fitted on the judged rows the rules serve (module doc)."""
    truth = mg.TRUTH
    assert truth is not None
    sources: dict[str, list[str]] = {}
    served = mg.rerun(base, sources)
    vectors: dict[str, list[Any]] = {}
    for op in mg.TRACE:
        if op[0] == mg.ROW:
            vectors.setdefault(op[1], []).append(op[2])
    index = {n: i for i, n in enumerate(FEATURE_NAMES)}
    out: dict[str, RulesParams] = {}
    for seg, seg_rows in sorted(rows.items()):
        horizon, mode = base.horizon_s(seg), base.label_mode(seg)
        keep, labels = [], []
        for i, (user, ts, _) in enumerate(seg_rows):
            # The rows daily_quality judges: user at risk, horizon inside the history.
            if (
                sources[seg][i] != "rules"
                or not truth.at_risk(user, ts)
                or ts + horizon > truth.end
            ):
                continue
            keep.append(i)
            labels.append(truth.churned_within(user, ts, horizon, mode))
        names = candidates(seg)
        x = np.array([[vectors[seg][i][index[n]] for n in names] for i in keep], dtype=float)
        y = np.array(labels, dtype=bool)
        chosen = _choose(x, y, names)
        while True:
            cols = [names.index(n) for n in chosen]
            w, _, std = mg._fit(x[:, cols], y.astype(float), clip=0.0)
            raw = w[:-1] / std  # log-odds per raw unit
            disagree = [
                n for n, r in zip(chosen, raw, strict=True) if np.sign(r) != risk_direction(n)
            ]
            if not disagree:
                break
            chosen = [n for n in chosen if n not in disagree]
        healthy = x[~y][:, cols]
        fixed = DEFAULT_RULES[seg]
        weights = {n: _round(r) for n, r in zip(chosen, raw, strict=True)}
        centers = {n: _round(float(np.median(healthy[:, j]))) for j, n in enumerate(chosen)}
        # ROI's healthy value is break-even, which an unknown ROI reads: unknown adds nothing.
        centers.update({n: ROI_UNKNOWN for n in chosen if n.startswith("roi_")})
        out[seg] = RulesParams(
            weights={FIXED: fixed.weights[FIXED], **weights},
            centers={FIXED: fixed.centers[FIXED], **{n: c for n, c in centers.items() if c}},
        )
        aucs = {n: exact_roc_auc(list(x[:, names.index(n)]), list(y)) for n in chosen}
        rule = RulesScore(out[seg].weights, 0.0, centers=out[seg].centers)
        fitted = [
            rule.predict(dict(zip(FEATURE_NAMES, vectors[seg][i], strict=True))) for i in keep
        ]
        before = [served[seg][i] for i in keep]
        # Every feature, context and log inputs too, either direction: where the signal is.
        every = [
            (a, n)
            for n in FEATURE_NAMES
            if (a := exact_roc_auc([vectors[seg][i][index[n]] for i in keep], labels)) is not None
        ]
        strongest = sorted(every, key=lambda an: -abs(an[0] - 0.5))[:6]
        print(
            f"fit {seg}: {len(keep):,} rule-served judged rows, {int(y.sum())} churning; "
            + ", ".join(f"{n} (AUC {a:.3f})" for n, a in aucs.items())
            + f"\n  AUC on these rows: default rules {_f(exact_roc_auc(before, labels))}, "
            + f"fitted {_f(exact_roc_auc(fitted, labels))}; strongest of all features: "
            + ", ".join(f"{n} {a:.3f}" for a, n in strongest),
            flush=True,
        )
    return out


def _choose(x: np.ndarray, y: np.ndarray, names: list[str]) -> list[str]:
    """Up to MAX_FEATURES names by univariate AUC in their risk direction (above 0.5 only),
    skipping ones correlated above MAX_CORRELATION with a name already chosen."""
    aucs = []
    for j, n in enumerate(names):
        a = exact_roc_auc(list(x[:, j]), list(y)) if np.ptp(x[:, j]) > 0 else None
        if a is not None and (a - 0.5) * risk_direction(n) > 0:
            aucs.append((abs(a - 0.5), n))
    chosen: list[str] = []
    for _, n in sorted(aucs, reverse=True):
        col = x[:, names.index(n)]
        if all(
            abs(np.corrcoef(col, x[:, names.index(m)])[0, 1]) <= MAX_CORRELATION for m in chosen
        ):
            chosen.append(n)
        if len(chosen) == MAX_FEATURES:
            break
    return chosen


def _round(v: float) -> float:
    """Two significant digits: readable, and far below the fit's own noise."""
    return 0.0 if v == 0 else float(f"{v:.2g}")


def with_rules(base: ModelConfig, rules: Mapping[str, Any]) -> ModelConfig:
    """`base` with `rules` (RulesParams or their JSON) for the segments they name."""
    return dataclasses.replace(base, rules=ModelConfig.from_dict({"rules": rules}).rules)


def rules_json(rules: Mapping[str, RulesParams]) -> dict[str, Any]:
    return {s: {"weights": dict(p.weights), "centers": dict(p.centers)} for s, p in rules.items()}


def _f(v: float | None, fmt: str = ".3f") -> str:
    return "-" if v is None else format(v, fmt)


def print_table(name: str, result: dict[str, dict[str, Any]]) -> None:
    print(f"\n{name}")
    print(
        f"{'segment':8}{'phase':16}{'rules':>7}{'rows':>8}{'churn':>7}{'AUC':>7}{'oracle':>8}"
        f"{'alerts':>8}{'/1k':>7}{'prec':>7}"
    )
    for seg, q in result.items():
        for phase in (FIRST, STEADY):
            p = q[phase]
            print(
                f"{seg:8}{phase:16}{_f(p['rules_share'], '.2f'):>7}{p['rows']:>8,}"
                f"{_f(p['churn_rate'], '.3f'):>7}{_f(p['auc']):>7}{_f(p['oracle_auc']):>8}"
                f"{p['alerts']:>8}{_f(p['alerts_per_1k_rows'], '.2f'):>7}"
                f"{_f(p['precision'], '.2f'):>7}"
            )
        print(f"{'':8}{'rate ratio':16}{_f(q['rate_ratio'], '.2f'):>7}")


def print_sweep(name: str, sweep: dict[str, list[tuple[float, Any]]]) -> None:
    print(f"\n{name}: days 1-14 alerts per 1k rows / precision at warning level")
    print(f"{'segment':8}" + "".join(f"{w:>12g}" for w in mg.LEVELS))
    for seg, levels in sorted(sweep.items()):
        cells = [
            f"{_f(q[FIRST]['alerts_per_1k_rows'], '.2f')}/{_f(q[FIRST]['precision'], '.2f')}"
            for _, q in levels
        ]
        print(f"{seg:8}" + "".join(f"{c:>12}" for c in cells))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--history", type=Path, required=True)
    parser.add_argument("--fit", type=Path, default=None, help="fit rules, write them here")
    parser.add_argument("--rules", type=Path, default=None, help="rules JSON to evaluate")
    parser.add_argument("--json", type=Path, default=None, help="write every number here")
    args = parser.parse_args(argv)
    # Daily rows only, as model_grid: the rows and churn_risk alerts are the same with event
    # scores, and the replay takes half the time.
    settings = Settings.from_env({"CHURNSTREAM_SCORE_EVENTS": "false"})
    mg.TRUTH = truth = SimulatorTruth.read(truth_path(args.history))
    began = time.perf_counter()
    rows = mg.record(args.history, settings)
    mg.BASE = base = configure.model_config(settings)
    print(
        f"{args.history.name}: replayed in {time.perf_counter() - began:.0f} s, "
        f"{sum(map(len, rows.values())):,} daily rows, {len(truth.truth.users):,} users",
        flush=True,
    )
    results: dict[str, Any] = {"default": evaluate(rows, base)}
    for seg, q in results["default"].items():
        # The recording re-run with the default rules must be the replay report's own numbers.
        report = mg.REPORT["segments"][seg]["truth"]["cold_start"]
        same = all(report[p][k] == q[p][k] for p in (FIRST, STEADY) for k in report[p])
        print(f"{seg}: default = replay report {same}, max |score - replay's| {q['max_diff']:.2g}")
    configs = {"default": base}
    if args.fit:
        fitted = rules_json(fit_rules(rows, base))
        args.fit.write_bytes(orjson.dumps(fitted, option=orjson.OPT_INDENT_2))
        print(orjson.dumps(fitted, option=orjson.OPT_INDENT_2).decode())
        configs["fitted"] = with_rules(base, fitted)
        results["fitted_rules"] = fitted
    elif args.rules:
        configs["fitted"] = with_rules(base, orjson.loads(args.rules.read_bytes()))
    for name, config in configs.items():
        if name != "default":
            results[name] = evaluate(rows, config)
        print_table(f"{name} rules", results[name])
        # The rules alone, as if no model were ever ready: how they rank the steady state.
        results[f"{name}_alone"] = evaluate(rows, dataclasses.replace(config, min_labels=10**9))
        print_table(f"{name} rules alone (no model)", results[f"{name}_alone"])
        results[f"{name}_sweep"] = level_sweep(rows, config)
        print_sweep(f"{name} rules", results[f"{name}_sweep"])
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_NON_STR_KEYS))


if __name__ == "__main__":
    main()
