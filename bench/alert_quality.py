"""Alert quality on the simulator: precision, recall among churners and lead time per segment.

Replays a simulated history once through the live code path (`model.replay.Replay`) with a
policy that records every input it sees (scores, ROI features, cancel/reactivate). Because
alert decisions never feed back into scores, re-running `AlertPolicy` on those inputs with other
thresholds gives exactly the alerts a full replay with those thresholds would give; that makes
the threshold sweep cheap. The simulator's ground truth judges the alerts:

- precision: share of `churn_risk` alerts followed by the user's cancel within `--window` days
  (alerts in the last `--window` days of the history are left out: their outcome is unknown);
- recall: share of churners (all / those whose decline was visible, i.e. not `silent`) with an
  alert in the `--window` days before their cancel; lead = cancel - first such alert;
- ROI: planted SaaS value drops caught by a `roi_drop` within `--roi-days` of the drop, and
  alerts on stable SaaS accounts (no planted drop, no cancel).

Sweeps: warning level, confirmation hold, critical level; and, for reference, the same policy
fed the simulator's hidden stress (0..1) once a day instead of a score: what a detector that
knew each customer's current state would achieve at a given lead time.

Usage: .venv/bin/python bench/alert_quality.py [--users 3000 --days 90 --seed 7]
       .venv/bin/python bench/alert_quality.py --file sim.jsonl   (reads sim.truth.json)
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
from dataclasses import dataclass, field, replace
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
from churnstream.model.replay import Replay
from churnstream.model.replay_input import ReplayRecord, read_records
from churnstream.stream.contract.events import DAY_S
from churnstream.stream.contract.topics import KIND_BY_TOPIC
from churnstream.stream.devtools.simulator import (
    GroundTruth,
    SimConfig,
    generate,
    ground_truth,
    truth_path,
)
from churnstream.stream.devtools.simulator.customers import plan_customers

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
    ) -> Alert | None:
        inputs = self._user(user_id, segment, memory)
        inputs.codes.append(SCORE)
        inputs.ts.append(ts)
        inputs.scores.append(score)
        return super().on_score(user_id, segment, ts, score, drivers, memory)

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

    def on_cancel(self, memory: AlertMemory) -> None:
        self._lifecycle(memory, CANCEL)
        super().on_cancel(memory)

    def on_reactivate(self, memory: AlertMemory) -> None:
        self._lifecycle(memory, REACTIVATE)
        super().on_reactivate(memory)

    def _lifecycle(self, memory: AlertMemory, code: int) -> None:
        user_id = self._owner.get(id(memory))
        if user_id is not None:  # a brand-new user's signup: nothing to reset
            inputs = self.users[user_id]
            inputs.codes.append(code)
            inputs.ts.append(-1.0)


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
                policy.on_cancel(memory)
            else:
                policy.on_reactivate(memory)
            if alert is not None:
                out.append(Raised(user_id, alert.segment or "", alert.kind, ts, alert.severity))
    return out


@dataclass(slots=True)
class RiskQuality:
    alerts: int
    judged: int  # alerts whose outcome window lies inside the history
    precision: float | None
    alerted_users: int
    never_churned_alerted: float  # share of never-churning users with an alert
    churners: int
    recall: float | None
    warned: int
    recall_warned: float | None
    median_lead: float | None


def risk_quality(
    alerts: Sequence[Raised],
    truth: GroundTruth,
    segment: str,
    window_days: float,
    severities: tuple[str, ...] = ("warning", "critical"),
    from_day: float = 0.0,
) -> RiskQuality:
    """Judge one segment's churn_risk alerts against the simulator's truth.

    `from_day` judges only the steady state: alerts from that day of the history on, and
    churners cancelling at least 14 days later (so they could have been alerted in time).
    """
    end = truth.start + truth.days * DAY_S
    window = window_days * DAY_S
    begin = truth.start + from_day * DAY_S
    users = {u: t for u, t in truth.users.items() if t.segment == segment}
    mine = [
        a
        for a in alerts
        if a.kind == CHURN_RISK
        and a.segment == segment
        and a.severity in severities
        and a.ts >= begin
    ]
    judged = hits = 0
    by_user: dict[str, list[float]] = {}
    for a in mine:
        by_user.setdefault(a.user_id, []).append(a.ts)
        if a.ts + window > end:
            continue
        judged += 1
        cancel = users[a.user_id].cancel_ts if a.user_id in users else None
        hits += cancel is not None and a.ts < cancel <= a.ts + window
    churners = [
        u
        for u, t in users.items()
        if t.cancel_ts is not None and t.cancel_ts >= begin + 14 * DAY_S * (from_day > 0)
    ]
    warned = [u for u in churners if not users[u].silent]
    leads: dict[str, float] = {}
    for u in churners:
        cancel = users[u].cancel_ts
        assert cancel is not None
        before = [ts for ts in by_user.get(u, ()) if cancel - window <= ts < cancel]
        if before:
            leads[u] = (cancel - min(before)) / DAY_S
    never = [u for u, t in users.items() if t.cancel_ts is None]
    caught_warned = [leads[u] for u in warned if u in leads]
    return RiskQuality(
        alerts=len(mine),
        judged=judged,
        precision=hits / judged if judged else None,
        alerted_users=len(by_user),
        never_churned_alerted=sum(u in by_user for u in never) / len(never) if never else 0.0,
        churners=len(churners),
        recall=len(leads) / len(churners) if churners else None,
        warned=len(warned),
        recall_warned=len(caught_warned) / len(warned) if warned else None,
        median_lead=statistics.median(caught_warned) if caught_warned else None,
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
            churned = t.cancel_ts is not None and t.cancel_ts <= ts
            if churned and (t.reactivate_ts is None or ts < t.reactivate_ts):
                continue
            inputs.codes.append(SCORE)
            inputs.ts.append(ts)
            inputs.scores.append(c.stress[day])
    return users


def sim_records(config: SimConfig) -> Iterator[ReplayRecord]:
    for n, rec in enumerate(generate(config), 1):
        value = None if rec.value is None else orjson.dumps(rec.value)
        yield ReplayRecord(KIND_BY_TOPIC.get(rec.topic), rec.topic, value, n)


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
        f"{_f(q.recall_warned, '.0%'):>7} {_f(q.median_lead, '.1f'):>6}"
    )


RISK_HEAD = (
    f"  {'thresholds w/c/clr':22} {'alerts':>6} {'prec':>6} {'alerted':>7} "
    f"{'loyal al':>8} {'recall':>6} {'rec-wrn':>7} {'lead d':>6}"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=None, help="replay this JSONL (+ .truth)")
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--window",
        type=float,
        default=28.0,
        help="days within which an alert must precede the cancel",
    )
    parser.add_argument(
        "--levels",
        type=float,
        nargs="+",
        default=[0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 0.9],
        help="warning levels to sweep",
    )
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
        "--inputs",
        type=Path,
        default=None,
        help="cache of the recorded inputs: written after a replay, read "
        "instead of replaying when it exists (re-sweeps in seconds)",
    )
    parser.add_argument(
        "--clip-z",
        type=float,
        default=ModelConfig().clip_z,
        help="model input cap in standard deviations (0: none); part of the cached inputs",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    if args.file is not None:
        records: Iterable[ReplayRecord] = read_records(args.file)
        quiet = None
        truth = GroundTruth.read(truth_path(args.file))
    else:
        sim = SimConfig(users=args.users, days=args.days, seed=args.seed)
        records, truth = sim_records(sim), ground_truth(sim)
        quiet = quiet_accounts(sim)
    defaults = AlertConfig()
    cached = args.inputs is not None and args.inputs.exists()
    if cached:
        users, report, clip_z = pickle.loads(args.inputs.read_bytes())
        if clip_z != args.clip_z:
            sys.exit(f"{args.inputs} was recorded with --clip-z {clip_z:g}")
        live = rerun(users, defaults)
    else:
        engine = EngineConfig(model=ModelConfig(clip_z=args.clip_z))
        policy, live, report = capture(records, defaults, engine)
        users = policy.users
        print(
            f"replayed {report['events']:,} events of {report['users']:,} users in "
            f"{time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
        if args.inputs is not None:
            args.inputs.write_bytes(pickle.dumps((users, report, args.clip_z)))
    again = rerun(users, defaults)
    same = sorted((a.user_id, a.kind, a.ts, a.severity) for a in again) == sorted(
        (a.user_id, a.kind, a.ts, a.severity) for a in live
    )
    print(f"re-run on recorded inputs reproduces the live alerts: {same} ({len(live)} alerts)")

    print(
        f"\nchurn_risk with the defaults (window {args.window:g} d; the replay report's own "
        "definitions in brackets)"
    )
    print(RISK_HEAD)
    for seg, s in report["segments"].items():
        q = risk_quality(live, truth, seg, args.window)
        print_risk_row(seg, q)
        if not cached:
            print(
                f"  {'':22} [replay: alerted users {s['alerted_users']}, precision "
                f"{_f(s['alert_precision'], '.2f')}, recall {_f(s['alert_recall'], '.0%')}, "
                f"lead {_f(s['median_lead_days'], '.1f')} d]"
            )
    for seg in report["segments"]:
        print_risk_row(
            f"{seg} critical only", risk_quality(live, truth, seg, args.window, ("critical",))
        )
    for seg in report["segments"]:
        print_risk_row(
            f"{seg} from day {args.steady_from:g}",
            risk_quality(live, truth, seg, args.window, from_day=args.steady_from),
        )

    print("\nthreshold sweep (warning = critical = w, clear = 0.6 w; per segment)")
    for seg in report["segments"]:
        target = SEGMENT_TARGETS.get(seg)
        print(f" {seg} (lead target {'-' if target is None else f'>= {target:g} d'})")
        print(RISK_HEAD)
        seg_users = {u: i for u, i in users.items() if i.segment == seg}
        for w in args.levels:
            levels = RiskThresholds(w, w, round(w * 0.6, 3))
            cfg = replace(defaults, segment_thresholds={seg: levels})
            raised = rerun(seg_users, cfg, (CHURN_RISK,))
            print_risk_row(
                f"{w:.2f}/{w:.2f}/{levels.clear:.2f}", risk_quality(raised, truth, seg, args.window)
            )
            print_risk_row(
                f"  from day {args.steady_from:g}",
                risk_quality(raised, truth, seg, args.window, from_day=args.steady_from),
            )

    print(f"\nconfirmation hold sweep (default levels; default {defaults.risk_hold_s:g} s)")
    print(RISK_HEAD)
    for hold in HOLDS_S:
        raised = rerun(users, replace(defaults, risk_hold_s=hold), (CHURN_RISK,))
        for seg in report["segments"]:
            print_risk_row(f"{seg} hold {hold:g} s", risk_quality(raised, truth, seg, args.window))

    print("\ncritical level sweep (default warning and hold; critical alerts only)")
    print(RISK_HEAD)
    for seg in report["segments"]:
        levels = defaults.thresholds_for(seg)
        seg_users = {u: i for u, i in users.items() if i.segment == seg}
        for crit in CRITICALS:
            cfg = replace(
                defaults,
                segment_thresholds={seg: replace(levels, critical=max(crit, levels.warning))},
            )
            raised = rerun(seg_users, cfg, (CHURN_RISK,))
            print_risk_row(
                f"{seg} critical {crit:g}",
                risk_quality(raised, truth, seg, args.window, ("critical",)),
            )

    if args.file is None:
        print("\nreference: the hidden stress (0..1) as the score, once a day, no warm-up/hold")
        print(RISK_HEAD)
        stress = stress_inputs(sim, truth)
        for level in STRESS_LEVELS:
            levels = RiskThresholds(level, level, round(level * 0.6, 3))
            cfg = AlertConfig(
                thresholds=levels, segment_thresholds={}, risk_warmup_s=0.0, risk_hold_s=0.0
            )
            raised = rerun(stress, cfg, (CHURN_RISK,))
            for seg in report["segments"]:
                print_risk_row(
                    f"{seg} stress {level:g}", risk_quality(raised, truth, seg, args.window)
                )

    print(
        f"\nroi_drop on SaaS (caught within {args.roi_days:g} d of the planted drop; "
        "rule drop/clear factor)"
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
    saas = {u: i for u, i in users.items() if i.segment == "saas"}
    for name, cfg in detectors.items():
        r = roi_quality(rerun(saas, cfg, (ROI_DROP,)), truth, args.roi_days, quiet)
        print(
            f"  {name:26} {r.planted:>7} {r.caught:>7} "
            f"{_f(statistics.median(r.delays) if r.delays else None, '.1f'):>8} {r.early:>6} "
            f"{r.stable:>6} {r.stable_alerted:>15} {r.stable_alerts:>6} "
            f"{r.quiet_alerted:>7}/{r.quiet:<6}"
        )


if __name__ == "__main__":
    main()
