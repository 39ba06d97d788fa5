"""Alert quality on the simulator: precision, recall among churners and lead time per segment.

Replays a simulated history once through the live code path (`model.replay.Replay`) with a
policy that records every input it sees (scores, ROI features, cancel/reactivate). Because
alert decisions never feed back into scores, re-running `AlertPolicy` on those inputs with other
thresholds gives exactly the alerts a full replay with those thresholds would give; that makes
the threshold sweep cheap. The simulator's ground truth judges the alerts:

- judged with `model.evaluation.alert_quality`, the replay report's own definitions: precision
  within the segment's horizon per its label mode (an alert on a silent dropout after its last
  activity counts when the user did not come back), recall among all churners (silent dropouts
  and churners without a visible decline included), the share of silent dropouts alerted
  within 3 days of their last activity, lead before the churn;
- ROI: planted SaaS value drops caught by a `roi_drop` within `--roi-days` of the drop, and
  alerts on stable SaaS accounts (no planted drop, no cancel).

Thresholds are chosen on one seed (`--tune-seed`) and reported on another (`--report-seed`),
objective in `choose`. For reference, the same policy fed the simulator's hidden stress (0..1)
once a day instead of a score: what a detector that knew each customer's state would achieve.

Usage: .venv/bin/python bench/alert_quality.py [--users 3000 --days 90 --tune-seed 7
           --report-seed 11 --cache /tmp]
       .venv/bin/python bench/alert_quality.py --clip-z 0   (model inputs not clipped)
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import time
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import astuple, dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import orjson

from churnstream.model.alerts import (
    CHURN_RISK,
    ROI_DROP,
    Alert,
    AlertConfig,
    AlertMemory,
    AlertPolicy,
    RiskThresholds,
    read_roi,
)
from churnstream.model.config import ModelConfig
from churnstream.model.engine import EngineConfig
from churnstream.model.evaluation import alert_quality
from churnstream.model.replay import Replay
from churnstream.model.replay_input import ReplayRecord
from churnstream.stream.contract.events import DAY_S
from churnstream.stream.devtools.simulator import (
    GroundTruth,
    SimConfig,
    generate,
    ground_truth,
)
from churnstream.stream.devtools.simulator.customers import plan_customers
from churnstream.stream.devtools.simulator.jsonl import replay_records
from churnstream.stream.devtools.simulator.judge import SimulatorTruth

ROI_KEYS: Final = (
    "value_7d",
    "cost_7d",
    "value_28d",
    "cost_28d",
    "tenure_days",
    "value_events_28d",
    "trend_value",
)
# Codes of the recorded per-user inputs.
SCORE, ROI, CANCEL, REACTIVATE = 0, 1, 2, 3
SEGMENT_TARGETS: Final = {"course": 5.0, "saas": 7.0}  # lead-time targets, days (docs: none)
HOLDS_S: Final = (0.0, 60.0, 600.0, 3600.0, 6 * 3600.0)
CRITICALS: Final = (0.4, 0.5, 0.6, 0.7, 0.8)
STRESS_LEVELS: Final = (0.4, 0.5, 0.6, 0.7)


@dataclass(slots=True)
class UserInputs:
    """Everything the alert policy saw for one user, in order."""

    segment: str | None = None
    codes: array = field(default_factory=lambda: array("b"))
    ts: array = field(default_factory=lambda: array("d"))
    scores: array = field(default_factory=lambda: array("d"))  # one per SCORE
    roi: array = field(default_factory=lambda: array("d"))  # len(ROI_KEYS) per ROI


class RecordingPolicy(AlertPolicy):
    """An AlertPolicy that also records its inputs per user (bench only)."""

    def __init__(self, config: AlertConfig) -> None:
        super().__init__(config)
        self.users: dict[str, UserInputs] = {}
        self._owner: dict[int, str] = {}  # id(AlertMemory) -> user_id, for lifecycle calls

    def _user(self, user_id: str, segment: str | None, memory: AlertMemory) -> UserInputs:
        self._owner[id(memory)] = user_id
        inputs = self.users.setdefault(user_id, UserInputs())
        inputs.segment = segment
        return inputs

    def on_score(
        self,
        user_id: str,
        segment: str | None,
        ts: float,
        score: float,
        drivers: Sequence[Any],
        memory: AlertMemory,
        **extra: Any,  # horizon_days, plan_price: carried on the alert, no effect on deciding
    ) -> Alert | None:
        inputs = self._user(user_id, segment, memory)
        inputs.codes.append(SCORE)
        inputs.ts.append(ts)
        inputs.scores.append(score)
        return super().on_score(user_id, segment, ts, score, drivers, memory, **extra)

    def on_roi(
        self,
        user_id: str,
        segment: str | None,
        ts: float,
        features: Mapping[str, float],
        memory: AlertMemory,
    ) -> Alert | None:
        cfg = self.config
        if read_roi(features, cfg.roi_min_history_days, cfg.roi_min_value_events) is not None:
            inputs = self._user(user_id, segment, memory)
            inputs.codes.append(ROI)
            inputs.ts.append(ts)
            inputs.roi.extend(float(features.get(k, 1.0)) for k in ROI_KEYS)
        return super().on_roi(user_id, segment, ts, features, memory)

    def on_cancel(self, memory: AlertMemory, ts: float) -> None:
        self._lifecycle(memory, CANCEL, ts)
        super().on_cancel(memory, ts)

    def on_reactivate(self, memory: AlertMemory, ts: float) -> None:
        self._lifecycle(memory, REACTIVATE, ts)
        super().on_reactivate(memory, ts)

    def _lifecycle(self, memory: AlertMemory, code: int, ts: float) -> None:
        user_id = self._owner.get(id(memory))
        if user_id is not None:  # a brand-new user's signup: nothing to reset
            inputs = self.users[user_id]
            inputs.codes.append(code)
            inputs.ts.append(ts)


@dataclass(frozen=True, slots=True)
class Raised:
    user_id: str
    segment: str
    kind: str
    ts: float
    severity: str


def rerun(
    users: Mapping[str, UserInputs],
    config: AlertConfig,
    kinds: Iterable[str] = (CHURN_RISK, ROI_DROP),
) -> list[Raised]:
    """The alerts `config` raises on the recorded inputs (same calls, same order)."""
    policy = AlertPolicy(config)
    want_score, want_roi = CHURN_RISK in kinds, ROI_DROP in kinds
    out: list[Raised] = []
    width = len(ROI_KEYS)
    for user_id, inputs in users.items():
        memory = AlertMemory()
        i_score = i_roi = 0
        for code, ts in zip(inputs.codes, inputs.ts, strict=True):
            alert = None
            if code == SCORE:
                if want_score:
                    alert = policy.on_score(
                        user_id, inputs.segment, ts, inputs.scores[i_score], (), memory
                    )
                i_score += 1
            elif code == ROI:
                if want_roi:
                    vals = inputs.roi[i_roi * width : (i_roi + 1) * width]
                    alert = policy.on_roi(
                        user_id, inputs.segment, ts, dict(zip(ROI_KEYS, vals, strict=True)), memory
                    )
                i_roi += 1
            elif code == CANCEL:
                policy.on_cancel(memory, ts)
            else:
                policy.on_reactivate(memory, ts)
            if alert is not None:
                out.append(Raised(user_id, alert.segment or "", alert.kind, ts, alert.severity))
    return out


@dataclass(slots=True)
class RiskQuality:
    alerts: int
    judged: int  # alerts whose horizon lies inside the history
    precision: float | None  # churned within the horizon (or already gone silently)
    alerted_users: int
    never_churned_alerted: float  # share of never-churning users with an alert
    churners: int  # per the segment's label mode
    recall: float | None
    silent: int
    silent_prompt: float | None  # silent dropouts alerted within 3 days of their last activity
    median_lead: float | None


def risk_quality(
    alerts: Sequence[Raised],
    truth: SimulatorTruth,
    segment: str,
    engine: EngineConfig,
    severities: tuple[str, ...] = ("warning", "critical"),
    from_day: float = 0.0,
) -> RiskQuality:
    """Judge one segment's churn_risk alerts with `model.evaluation` (the replay report's own
    definitions): within the segment's horizon, per its label mode.

    `from_day` judges only the steady state: alerts from that day of the history on.
    """
    begin = truth.start + from_day * DAY_S
    mine = [
        (a.user_id, a.ts)
        for a in alerts
        if a.kind == CHURN_RISK
        and a.segment == segment
        and a.severity in severities
        and a.ts >= begin
    ]
    horizon_s = engine.model.horizon_s(segment)
    q = alert_quality(mine, truth, segment, horizon_s, engine.model.label_mode(segment))
    alerted = {u for u, _ in mine}
    never = [u for u, t in truth.truth.users.items() if t.segment == segment and not t.churn_kind]
    return RiskQuality(
        alerts=q["alerts"],
        judged=q["judged"],
        precision=q["precision"],
        alerted_users=len(alerted),
        never_churned_alerted=sum(u in alerted for u in never) / len(never) if never else 0.0,
        churners=q["churners"],
        recall=q["recall"],
        silent=q["silent_dropouts"],
        silent_prompt=q["silent_alerted_within_3d"],
        median_lead=q["median_lead_days"],
    )


@dataclass(slots=True)
class RoiQuality:
    planted: int
    caught: int
    delays: list[float]
    early: int  # roi_drop alerts on planted accounts before their drop
    stable: int
    stable_alerted: int
    stable_alerts: int
    quiet: int = 0
    quiet_alerted: int = 0


def roi_quality(
    alerts: Sequence[Raised],
    truth: GroundTruth,
    max_delay_days: float,
    quiet: set[str] | None = None,
) -> RoiQuality:
    """Planted SaaS value drops caught within `max_delay_days`; alerts on stable accounts.

    Planted drops count only when the account is still subscribed 7 days after the drop and
    the drop is at least 7 days before the end (otherwise no 7-day window can see it).
    Stable: no planted drop, no cancel. `quiet`: the stable accounts without a harmless bad
    week deep enough to cut value by a third (those are real, if temporary, value drops).
    """
    end = truth.start + truth.days * DAY_S
    roi = {}
    for a in alerts:
        if a.kind == ROI_DROP:
            roi.setdefault(a.user_id, []).append(a.ts)
    res = RoiQuality(0, 0, [], 0, 0, 0, 0)
    for uid, t in truth.users.items():
        if t.segment != "saas":
            continue
        times = roi.get(uid, [])
        if t.roi_drop_ts is not None:
            drop = t.roi_drop_ts
            week_after = drop + 7 * DAY_S
            if week_after > end or (t.cancel_ts is not None and t.cancel_ts < week_after):
                continue
            res.planted += 1
            res.early += sum(ts < drop for ts in times)
            after = [ts for ts in times if drop <= ts <= drop + max_delay_days * DAY_S]
            if after:
                res.caught += 1
                res.delays.append((min(after) - drop) / DAY_S)
        elif t.cancel_ts is None:
            res.stable += 1
            res.stable_alerted += bool(times)
            res.stable_alerts += len(times)
            if quiet is not None and uid in quiet:
                res.quiet += 1
                res.quiet_alerted += bool(times)
    return res


def quiet_accounts(config: SimConfig) -> set[str]:
    """Users whose hidden stress never exceeds 0.4 (value never falls by a third)."""
    return {c.user_id for c in plan_customers(config) if max(c.stress[: config.days]) <= 0.4}


def stress_inputs(config: SimConfig, truth: GroundTruth) -> dict[str, UserInputs]:
    """Each customer's hidden stress at noon of every subscribed day, as if it were a score."""
    users: dict[str, UserInputs] = {}
    for c in plan_customers(config):
        t = truth.users[c.user_id]
        inputs = users[c.user_id] = UserInputs(segment=c.segment)
        for day in range(c.signup_day, config.days):
            ts = truth.start + (day + 0.5) * DAY_S
            churned = t.churn_ts is not None and t.churn_ts <= ts
            if churned and (t.reactivate_ts is None or ts < t.reactivate_ts):
                continue
            inputs.codes.append(SCORE)
            inputs.ts.append(ts)
            inputs.scores.append(c.stress[day])
    return users


def sim_records(config: SimConfig) -> Iterator[ReplayRecord]:
    return replay_records(generate(config))


def capture(
    records: Iterable[ReplayRecord], config: AlertConfig, engine: EngineConfig | None = None
) -> tuple[RecordingPolicy, list[Raised], dict]:
    """Replay once; returns the recorded inputs, the alerts raised live and the report."""
    policy = RecordingPolicy(config)
    live: list[Raised] = []

    class Sink:
        def write(self, line: bytes) -> None:
            a = orjson.loads(line)
            live.append(
                Raised(a["user_id"], a["segment"], a["kind"], _epoch(a["ts"]), a["severity"])
            )

    replay = Replay(engine or EngineConfig(), policy, alerts_out=Sink())  # type: ignore[arg-type]
    report = replay.run(records)
    return policy, live, report


def _epoch(rfc: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(rfc.replace("Z", "+00:00")).timestamp()


def _f(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_risk_row(label: str, q: RiskQuality) -> None:
    print(
        f"  {label:22} {q.alerts:>6} {_f(q.precision, '.2f'):>6} {q.alerted_users:>7} "
        f"{q.never_churned_alerted:>8.1%} {_f(q.recall, '.0%'):>6} "
        f"{_f(q.silent_prompt, '.0%'):>7} {_f(q.median_lead, '.1f'):>6}"
    )


RISK_HEAD = (
    f"  {'thresholds w/c/clr':22} {'alerts':>6} {'prec':>6} {'alerted':>7} "
    f"{'loyal al':>8} {'recall':>6} {'sil<=3d':>7} {'lead d':>6}"
)


@dataclass(slots=True)
class History:
    """One simulated history: the recorded alert inputs, the live alerts and the truth."""

    seed: int
    users: dict[str, UserInputs]
    live: list[Raised]
    report: dict[str, Any]
    truth: SimulatorTruth
    sim: SimConfig


def load(args: argparse.Namespace, seed: int, engine: EngineConfig) -> History:
    """Replay the simulated history of `seed`, or read its recorded inputs from the cache."""
    sim = SimConfig(users=args.users, days=args.days, seed=seed)
    truth = SimulatorTruth(ground_truth(sim))
    cache = None
    if args.cache is not None:
        cache = args.cache / f"alert-inputs-{args.users}u-{args.days}d-s{seed}-z{args.clip_z:g}.pkl"
    if cache is not None and cache.exists():
        users, report = pickle.loads(cache.read_bytes())
        return History(seed, users, rerun(users, AlertConfig()), report, truth, sim)
    started = time.perf_counter()
    policy, live, report = capture(sim_records(sim), AlertConfig(), engine)
    print(
        f"seed {seed}: replayed {report['events']:,} events of {report['users']:,} users in "
        f"{time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    if cache is not None:
        cache.write_bytes(pickle.dumps((policy.users, report)))
    return History(seed, policy.users, live, report, truth, sim)


def choose(h: History, seg: str, engine: EngineConfig, args: argparse.Namespace) -> RiskThresholds:
    """Per-segment thresholds on the tuning history, by the stated objective:

    warning: the level with the highest recall among all churners whose precision within the
    horizon is at least `--min-precision` (the issue's bar: today's replay measured 0.41-0.43;
    equal recall: the lower level, which alerts sooner; none: the most precise level);
    critical: the lowest level at or above it whose critical alerts alone reach
    `--critical-precision` (none: the most precise); clear at 0.6 x warning against flapping.
    """
    defaults = AlertConfig()
    seg_users = {u: i for u, i in h.users.items() if i.segment == seg}
    print(f" {seg} (seed {h.seed})")
    print(RISK_HEAD)
    rows: list[tuple[float, RiskQuality]] = []
    for w in args.levels:
        levels = RiskThresholds(w, w, round(w * 0.6, 3))
        cfg = replace(defaults, segment_thresholds={seg: levels})
        q = risk_quality(rerun(seg_users, cfg, (CHURN_RISK,)), h.truth, seg, engine)
        rows.append((w, q))
        print_risk_row(f"{w:.2f}/{w:.2f}/{levels.clear:.2f}", q)
    ok = [(w, q) for w, q in rows if (q.precision or 0.0) >= args.min_precision]
    if ok:
        warning = max(ok, key=lambda r: (r[1].recall or 0.0, -r[0]))[0]
    else:
        warning = max(rows, key=lambda r: r[1].precision or 0.0)[0]
    crit_rows: list[tuple[float, RiskQuality]] = []
    for crit in sorted({c for c in (*CRITICALS, *args.levels) if warning <= c < 1.0}):
        levels = RiskThresholds(warning, crit, round(warning * 0.6, 3))
        cfg = replace(defaults, segment_thresholds={seg: levels})
        raised = rerun(seg_users, cfg, (CHURN_RISK,))
        q = risk_quality(raised, h.truth, seg, engine, ("critical",))
        crit_rows.append((crit, q))
        print_risk_row(f"  critical {crit:g} (crit only)", q)
    good = [c for c, q in crit_rows if (q.precision or 0.0) >= args.critical_precision]
    critical = min(good) if good else max(crit_rows, key=lambda r: (r[1].precision or 0.0, r[0]))[0]
    return RiskThresholds(warning, critical, round(warning * 0.6, 3))


def print_quality(h: History, cfg: AlertConfig, engine: EngineConfig, steady_from: float) -> None:
    raised = rerun(h.users, cfg, (CHURN_RISK,))
    print(RISK_HEAD)
    for seg in h.report["segments"]:
        t = cfg.thresholds_for(seg)
        name = f"{seg} {t.warning:g}/{t.critical:g}/{t.clear:g}"
        print_risk_row(name, risk_quality(raised, h.truth, seg, engine))
        print_risk_row("  critical only", risk_quality(raised, h.truth, seg, engine, ("critical",)))
        print_risk_row(
            f"  from day {steady_from:g}",
            risk_quality(raised, h.truth, seg, engine, from_day=steady_from),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--tune-seed", type=int, default=7, help="thresholds are chosen here")
    parser.add_argument("--report-seed", type=int, default=11, help="and reported here")
    parser.add_argument(
        "--levels",
        type=float,
        nargs="+",
        default=[0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7],
        help="warning levels to sweep",
    )
    parser.add_argument("--min-precision", type=float, default=0.43)
    parser.add_argument("--critical-precision", type=float, default=0.6)
    parser.add_argument(
        "--steady-from",
        type=float,
        default=45.0,
        help="also judge only alerts from this day on (after model warm-up)",
    )
    parser.add_argument(
        "--roi-days",
        type=float,
        default=7.0,
        help="a planted drop counts as caught within this many days",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="directory for the recorded inputs per seed: written after a replay, read "
        "instead of replaying when present (re-sweeps in seconds)",
    )
    parser.add_argument(
        "--clip-z",
        type=float,
        default=ModelConfig().clip_z,
        help="model input cap in standard deviations (0: none); part of the cached inputs",
    )
    args = parser.parse_args()
    if args.tune_seed == args.report_seed:
        sys.exit("--tune-seed and --report-seed must differ: thresholds are reported unseen")
    engine = EngineConfig(model=ModelConfig(clip_z=args.clip_z))
    tune = load(args, args.tune_seed, engine)
    held_out = load(args, args.report_seed, engine)
    defaults = AlertConfig()
    same = sorted(astuple(a) for a in rerun(tune.users, defaults)) == sorted(
        astuple(a) for a in tune.live
    )
    print(f"re-run on recorded inputs reproduces the live alerts: {same} ({len(tune.live)})")

    for h in (tune, held_out):
        print(f"\nchurn_risk with the current defaults, seed {h.seed}")
        print_quality(h, defaults, engine, args.steady_from)

    print(
        f"\nchoice on seed {tune.seed}: warning = max recall with precision >= "
        f"{args.min_precision:g}, critical = lowest with critical precision >= "
        f"{args.critical_precision:g}"
    )
    chosen = {seg: choose(tune, seg, engine, args) for seg in tune.report["segments"]}
    print(f"\nchosen: {chosen}")
    tuned = replace(defaults, segment_thresholds=chosen)
    for h in (tune, held_out):
        print(f"\nchurn_risk with the chosen thresholds, seed {h.seed}")
        print_quality(h, tuned, engine, args.steady_from)

    print("\nreference: the hidden stress (0..1) as the score, once a day, no warm-up/hold")
    print(RISK_HEAD)
    stress = stress_inputs(held_out.sim, held_out.truth.truth)
    for level in STRESS_LEVELS:
        levels = RiskThresholds(level, level, round(level * 0.6, 3))
        cfg = AlertConfig(
            thresholds=levels, segment_thresholds={}, risk_warmup_s=0.0, risk_hold_s=0.0
        )
        raised = rerun(stress, cfg, (CHURN_RISK,))
        for seg in held_out.report["segments"]:
            print_risk_row(
                f"{seg} stress {level:g}", risk_quality(raised, held_out.truth, seg, engine)
            )

    print(
        f"\nroi_drop on SaaS, seed {held_out.seed} (caught within {args.roi_days:g} d of the "
        "planted drop; rule drop/clear factor)"
    )
    print(
        f"  {'detector':26} {'planted':>7} {'caught':>7} {'median d':>8} {'early':>6} "
        f"{'stable':>6} {'stable alerted':>15} {'alerts':>6} {'quiet alerted':>14}"
    )
    detectors = {
        "rule 0.5/1.25 (default)": defaults,
        "rule 0.4/1.1": replace(defaults, roi_drop=0.4, roi_clear_factor=1.1),
        "rule 0.25/1.25": replace(defaults, roi_drop=0.25),
        "rule 0.6/1.25": replace(defaults, roi_drop=0.6),
        "rule 0.5/1.25, no absolute": replace(defaults, roi_threshold=1e-9),
        "page_hinkley lambda 1": replace(defaults, roi_detector="page_hinkley"),
        "page_hinkley lambda 3": replace(defaults, roi_detector="page_hinkley", ph_threshold=3.0),
    }
    saas = {u: i for u, i in held_out.users.items() if i.segment == "saas"}
    quiet = quiet_accounts(held_out.sim)
    for name, cfg in detectors.items():
        r = roi_quality(rerun(saas, cfg, (ROI_DROP,)), held_out.truth.truth, args.roi_days, quiet)
        print(
            f"  {name:26} {r.planted:>7} {r.caught:>7} "
            f"{_f(statistics.median(r.delays) if r.delays else None, '.1f'):>8} {r.early:>6} "
            f"{r.stable:>6} {r.stable_alerted:>15} {r.stable_alerts:>6} "
            f"{r.quiet_alerted:>7}/{r.quiet:<6}"
        )


if __name__ == "__main__":
    main()
