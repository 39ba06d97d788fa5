"""Offline replay and backtest: the live code path over a file, without Kafka.

Validation, features, labels, learning, scoring and alerts are the same objects the worker uses.
The trainer runs inline: its snapshot is installed into the scorer every `snapshot_every`
learned examples, as the live trainer publishes snapshots that workers hot-swap.
"""

from __future__ import annotations

import dataclasses
import statistics
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from churnstream.features import FEATURE_NAMES
from churnstream.model.alerts import AlertPolicy
from churnstream.model.engine import Detector, EngineConfig, EventScore
from churnstream.model.evaluation import Truth, alert_quality, cold_start, daily_quality
from churnstream.model.labels import Example
from churnstream.model.quality import SegmentQuality
from churnstream.model.replay_input import ReplayRecord, read_records
from churnstream.model.score_pool import ScorePool
from churnstream.model.scoring import Scorer
from churnstream.model.trainer import Trainer
from churnstream.model.user_record import UserRecord
from churnstream.model.user_view import user_view
from churnstream.stream.contract.events import DAY_S, SEGMENTS, Event, Lifecycle
from churnstream.stream.contract.topics import INPUT_TOPICS
from churnstream.stream.contract.validation import Invalid, parse

SWEEP_EVERY = 1000  # events between label sweeps (the live worker sweeps once per batch)
# Equal event times are applied in this order live too (agents/batch_loop.py tie-break).
TOPIC_RANK = {kind: i for i, kind in enumerate(INPUT_TOPICS)}


class MemoryRepository:
    """User records in a dict: the replay's state store."""

    def __init__(self) -> None:
        self.records: dict[str, UserRecord] = {}
        self.expired = 0  # users removed after the retention (model.engine `_expire`)

    def get(self, user_id: str) -> UserRecord | None:
        return self.records.get(user_id)

    def put(self, record: UserRecord) -> None:
        self.records[record.user_id] = record

    def remove(self, user_id: str) -> None:
        self.records.pop(user_id, None)
        self.expired += 1


@dataclass
class _Segment:
    """Per-segment accumulators of the report."""

    published: SegmentQuality
    rules: SegmentQuality
    scores: int = 0
    alerts: Counter[str] = field(default_factory=Counter)
    cancels: int = 0
    cancels_alerted: int = 0
    lead_days: list[float] = field(default_factory=list)
    alerted_users: set[str] = field(default_factory=set)
    alerted_churned: set[str] = field(default_factory=set)
    # Kept only when judged against a truth: every daily row and churn_risk alert.
    row_users: list[str] = field(default_factory=list)
    row_ts: array = field(default_factory=lambda: array("d"))
    row_scores: array = field(default_factory=lambda: array("d"))
    risk_alerts: list[tuple[str, float]] = field(default_factory=list)


class Replay:
    def __init__(
        self,
        config: EngineConfig,
        alerts: AlertPolicy,
        *,
        max_bytes: int = 65536,
        snapshot_every: int = 500,
        scores_out: IO[bytes] | None = None,
        alerts_out: IO[bytes] | None = None,
        wall_clock: Callable[[], float] | None = None,
        truth: Truth | None = None,
        jobs: int = 1,
    ) -> None:
        # The inline trainer learns every released label: rows use the model as of their day.
        config = self.config = dataclasses.replace(config, model_as_of=True)
        self.repo = MemoryRepository()
        self.scorer = Scorer(config.model, FEATURE_NAMES)
        kw = {"wall_clock": wall_clock} if wall_clock else {}
        self.detector = Detector(config, self.scorer, alerts, self.repo, **kw)
        # Event scores are worked out only for a scores file: by `jobs - 1` other processes
        # (model/score_pool.py), or here with one job.
        self.detector.record_event_scores = scores_out is not None and jobs <= 1
        # Without a scores file only each user's newest event score is worked out.
        self.detector.event_vectors = scores_out is not None
        self.pool = (
            ScorePool(jobs - 1, config.model, scores_out)
            if scores_out is not None and jobs > 1
            else None
        )
        self.workers_cpu_s = 0.0  # the pool's, once closed
        self.trainer = Trainer(config.model, FEATURE_NAMES, snapshot_every)
        self.max_bytes = max_bytes
        self.scores_out = scores_out
        self.alerts_out = alerts_out
        self.truth = truth
        warning = {s: alerts.config.thresholds_for(s).warning for s in SEGMENTS}
        self.segments = {
            s: _Segment(SegmentQuality(threshold=warning[s]), SegmentQuality(threshold=warning[s]))
            for s in SEGMENTS
        }
        self.results: Counter[str] = Counter()
        self.invalid: Counter[str] = Counter()
        self.events = 0
        self.applied = 0
        self._ties: list[tuple[int, int, Event]] = []
        # First churn_risk alert of each user since its last (re)activation, for lead times.
        self._first_alert: dict[str, float] = {}
        self._clear = {s: alerts.config.thresholds_for(s).clear for s in SEGMENTS}

    # -- driving ------------------------------------------------------------------------------

    def run(
        self, records: Iterable[ReplayRecord], progress: Callable[[int], None] | None = None
    ) -> dict[str, Any]:
        try:
            for rec in records:
                self.feed(rec)
                if progress is not None and self.events % 10000 == 0:
                    progress(self.events)
            self.finish()
        finally:
            self.close()
        return self.report()

    def feed(self, rec: ReplayRecord) -> None:
        """Validate one record; valid events of the same event time wait so that they are
        applied in the live worker's tie order (the contract's topic order)."""
        self.feed_parsed(rec.kind, parse(rec.kind, rec.value, self.max_bytes) if rec.kind else None)

    def feed_parsed(self, kind: str | None, event: Event | Invalid | None) -> None:
        """`feed` of a record its caller already parsed (None: it names no known topic)."""
        self.events += 1
        if event is None or isinstance(event, Invalid):
            error = event.error if isinstance(event, Invalid) else "unknown_topic"
            self.invalid[error.split(":", 1)[0]] += 1
            self.results["invalid"] += 1
            return
        if self._ties and event.ts != self._ties[0][2].ts:
            self._apply_ties()
        self._ties.append((TOPIC_RANK[kind], len(self._ties), event))  # type: ignore[index]

    def _apply_ties(self) -> None:
        ties = self._ties
        if len(ties) == 1:  # most event times are unique: nothing to order
            self._apply(ties[0][2])
        else:
            ties.sort(key=lambda t: (t[0], t[1]))
            for _, _, event in ties:
                self._apply(event)
        ties.clear()

    def _apply(self, event: Event) -> None:
        self.applied += 1
        if isinstance(event, Lifecycle):
            self._lifecycle(event)
        self.results[self.detector.handle(event)] += 1
        if self.applied % SWEEP_EVERY == 0:
            self.detector.sweep()
        self._drain()
        if self.detector.held is not None:  # `_model_as_of` does nothing otherwise: no call
            self._model_as_of()

    def _model_as_of(self) -> None:
        """Daily rows held for the model as of their boundary get it here: the inline trainer
        has learned every released label, the snapshot the live trainer would publish."""
        while (held := self.detector.held) is not None:
            for segment, model in self.trainer.models.items():
                current = self.scorer.models.get(segment)
                if current is None or model.version > current.version:
                    self._install(segment)
            self.detector.sweep()
            if self.detector.held == held:
                self.detector.decide_held()  # labels the trainer does not learn (no segment)
            self._drain()

    def finish(self) -> None:
        try:
            self._apply_ties()
            self.detector.sweep()
            self._drain()
            self._model_as_of()
            self.detector.complete_last()
        finally:
            self.close()

    def close(self) -> None:
        """Write the score records still with the pool's workers and stop them."""
        if self.pool is not None:
            pool, self.pool = self.pool, None
            pool.close()
            self.workers_cpu_s = pool.cpu_s

    def _install(self, segment: str) -> None:
        snapshot = self.trainer.snapshot(segment)
        model = self.scorer.install_snapshot(snapshot)
        if self.pool is not None:
            self.pool.installed(model, snapshot)

    def _lifecycle(self, event: Lifecycle) -> None:
        if event.event == "cancel":
            known = self.repo.get(event.user_id)
            if known is None or known.state.churned:
                return
            seg = self.segments.get(known.state.segment or self.config.default_segment)
            if seg is None:
                return
            seg.cancels += 1
            first = self._first_alert.pop(event.user_id, None)
            if first is not None and first <= event.ts:
                seg.cancels_alerted += 1
                seg.lead_days.append((event.ts - first) / DAY_S)
                seg.alerted_churned.add(event.user_id)
        elif event.event in ("signup", "reactivate"):
            self._first_alert.pop(event.user_id, None)

    def _drain(self) -> None:
        out = self.detector.out
        scores, alerts, examples = out.scores, out.alerts, out.examples
        if not (alerts or examples):
            if not scores:
                return
            if len(scores) == 1 and type(scores[0]) is EventScore and self.pool is None:
                # The usual event without a scores file: one unscored event score to count
                # (what the loop below does with it), the list kept for the next.
                self.segments[scores[0].segment].scores += 1
                scores.clear()
                return
        # Only the lists are taken (`Outputs.drain` makes two Counters per event, no reader of
        # `results` or `held` here: the replay counts the results `handle` returns).
        out.scores, out.alerts, out.examples = [], [], []
        for score in scores:
            if type(score) is EventScore:
                self.segments[score.segment].scores += 1
                if self.pool is not None:
                    self.pool.event(score)
                continue
            seg = self.segments[score["segment"]]
            seg.scores += 1
            if score["trigger"] == "daily":
                if score["score"] < self._clear[score["segment"]]:
                    # The alert episode ended (hysteresis cleared on a daily row): lead restarts.
                    self._first_alert.pop(score["user_id"], None)
                if self.truth is not None:
                    seg.row_users.append(score["user_id"])
                    seg.row_ts.append(datetime.fromisoformat(score["ts"]).timestamp())
                    seg.row_scores.append(score["score"])
            if self.pool is not None:
                self.pool.line(orjson.dumps(score) + b"\n")
            elif self.scores_out is not None:
                self.scores_out.write(orjson.dumps(score) + b"\n")
        for alert in alerts:
            seg = self.segments[alert["segment"]]
            seg.alerts[f"{alert['kind']}/{alert['severity']}"] += 1
            if alert["kind"] == "churn_risk":
                seg.alerted_users.add(alert["user_id"])
                # The alert's own event time: a daily alert of a quiet user is later than its
                # last event.
                ts = datetime.fromisoformat(alert["ts"]).timestamp()
                self._first_alert.setdefault(alert["user_id"], ts)
                if self.truth is not None:
                    seg.risk_alerts.append((alert["user_id"], ts))
            if self.alerts_out is not None:
                self.alerts_out.write(orjson.dumps(alert) + b"\n")
        if not examples:
            return
        last = {e.segment: i for i, e in enumerate(examples)}
        for i, example in enumerate(examples):
            self._learn(example, closes=last[example.segment] == i)

    def _learn(self, example: Example, closes: bool = False) -> None:
        seg = self.segments[example.segment]
        seg.published.update(example.score, example.label)
        rules = self.scorer.rules(example.segment)
        x = dict(zip(FEATURE_NAMES, example.features, strict=False))
        seg.rules.update(rules.predict(x), example.label)
        step = self.trainer.learn(example)
        if closes:
            self.trainer.close(example)
        if step.snapshot_due:
            self._install(step.segment)

    # -- results ------------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        segments: dict[str, Any] = {}
        for name, seg in self.segments.items():
            if not seg.scores and not seg.cancels:
                continue
            prequential = self.trainer.quality[name].report()
            published = seg.published.report()
            segments[name] = {
                "scores": seg.scores,
                "labels": {"positive": published["n_pos"], "negative": published["n_neg"]},
                "prequential_auc": prequential["roc_auc"],
                "prequential_pr_auc": prequential["pr_auc"],
                "prequential_log_loss": prequential["log_loss"],
                "published_auc": published["roc_auc"],
                "published_pr_auc": published["pr_auc"],
                "published_log_loss": published["log_loss"],
                "rules_auc": seg.rules.report()["roc_auc"],
                "threshold": published["threshold"],
                "precision_at_threshold": published["precision"],
                "recall_at_threshold": published["recall"],
                "mean_score": published["mean_score"],
                "positive_rate": published["positive_rate"],
                "alerts": dict(seg.alerts),
                "churners": seg.cancels,
                "churners_alerted_before_cancel": seg.cancels_alerted,
                "alert_recall": seg.cancels_alerted / seg.cancels if seg.cancels else None,
                "alerted_users": len(seg.alerted_users),
                "alert_precision": (
                    len(seg.alerted_churned) / len(seg.alerted_users) if seg.alerted_users else None
                ),
                "median_lead_days": statistics.median(seg.lead_days) if seg.lead_days else None,
                "model_version": self.trainer.models[name].version,
                "model_ready": self.config.model.ready(self.trainer.models[name]),
            }
            if self.truth is not None:
                segments[name]["truth"] = self._judge(name, seg, self.truth)
        return {
            "events": self.events,
            "results": dict(self.results),
            "invalid_by_error": dict(self.invalid),
            "users": len(self.repo.records),
            "segments": segments,
        }

    def _judge(self, name: str, seg: _Segment, truth: Truth) -> dict[str, Any]:
        """The segment's daily rows and churn_risk alerts against what really happened."""
        horizon_s = self.config.model.horizon_s(name)
        mode = self.config.model.label_mode(name)
        rows = zip(seg.row_users, seg.row_ts, seg.row_scores, strict=True)
        return {
            "label_mode": mode,
            "horizon_days": horizon_s / DAY_S,
            "daily": daily_quality(rows, truth, horizon_s, mode),
            "alerts": alert_quality(seg.risk_alerts, truth, name, horizon_s, mode),
            "cold_start": cold_start(seg.risk_alerts, seg.row_ts, truth, horizon_s, mode),
        }

    def states(self) -> Iterable[dict[str, Any]]:
        for rec in self.repo.records.values():
            yield user_view(rec)


def replay_file(
    path: Path,
    config: EngineConfig,
    alerts: AlertPolicy,
    **kw: Any,
) -> tuple[Replay, dict[str, Any]]:
    progress = kw.pop("progress", None)
    replay = Replay(config, alerts, **kw)
    report = replay.run(read_records(path), progress)
    return replay, report


def summarize(report: dict[str, Any]) -> str:
    """A few readable lines of a replay report."""

    def f(v: Any, spec: str = ".3f") -> str:
        return "-" if v is None else format(v, spec)

    lines = [
        f"events {report['events']:,}  users {report['users']:,}  "
        + "  ".join(f"{k} {v:,}" for k, v in sorted(report["results"].items()))
    ]
    head = (
        f"{'segment':8} {'scores':>9} {'labels +/-':>13} {'AUC':>6} {'rules':>6} {'PR-AUC':>6} "
        f"{'logloss':>7} {'prec@t':>6} {'churners':>8} {'alerted':>7} {'lead d':>6}"
    )
    lines.append(head)
    for name, s in report["segments"].items():
        labels = f"{s['labels']['positive']}/{s['labels']['negative']}"
        lines.append(
            f"{name:8} {s['scores']:>9,} {labels:>13} {f(s['prequential_auc'], '.3f'):>6} "
            f"{f(s['rules_auc']):>6} {f(s['prequential_pr_auc']):>6} "
            f"{f(s['prequential_log_loss']):>7} {f(s['precision_at_threshold']):>6} "
            f"{s['churners']:>8} {f(s['alert_recall'], '.0%'):>7} "
            f"{f(s['median_lead_days'], '.1f'):>6}"
        )
    judged = {name: s["truth"] for name, s in report["segments"].items() if "truth" in s}
    if judged:
        lines.append(
            f"against the truth: {'segment':8} {'rows':>9} {'AUC':>6} {'oracle':>6} "
            f"{'0-2d':>6} {'2-7d':>6} {'7+d':>6} {'prec':>6} {'recall':>6} {'silent<=3d':>10}"
        )
    for name, t in judged.items():
        daily, alerts = t["daily"], t["alerts"]
        lead = [daily["auc_by_lead"][k]["auc"] for k in ("0-2d", "2-7d", "7+d")]
        lines.append(
            f"{'':18} {name:8} {daily['rows']:>9,} {f(daily['auc']):>6} "
            f"{f(daily['oracle_auc']):>6} {f(lead[0]):>6} {f(lead[1]):>6} {f(lead[2]):>6} "
            f"{f(alerts['precision']):>6} {f(alerts['recall'], '.0%'):>6} "
            f"{f(alerts['silent_alerted_within_3d'], '.0%'):>10}"
        )
    return "\n".join(lines)
