"""Every Prometheus metric of the churnstream worker, on one dedicated registry.

Naming follows Prometheus conventions: `churnstream_` prefix, base units (`_seconds`,
`_bytes`), `_total` on counters. Labels are bounded: topic, segment, kind, severity, error,
result, source, label, reason, and partition (consumer lag only). No label ever carries a user id.

The hot path goes through `WorkerMetrics`, whose methods return label children cached in a
dict, so `metrics.consumed(topic, result).inc(n)` costs one dict lookup plus the increment
instead of prometheus_client's label resolution per record.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Final, Generic, Protocol, TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.metrics import MetricWrapperBase

from churnstream.model.snapshot_signing import REASONS as SNAPSHOT_REFUSALS
from churnstream.stream.contract.alerts import ALERT_KINDS, SEVERITIES
from churnstream.stream.contract.events import SEGMENTS

NAMESPACE: Final = "churnstream"

RESULTS: Final = ("ok", "invalid", "duplicate", "late", "too_late", "redelivered", "rekeyed")
SCORE_SOURCES: Final = ("rules", "model")
LABEL_VALUES: Final = ("positive", "negative")
GAP_KINDS: Final = ("lost", "empty", "stalled")
# Why a batch was dropped before its commit (agents/batch_loop.py).
DROP_REASONS: Final = ("fenced", "failed")
# Why the broker refused outputs for good (agents/outputs.py).
REFUSALS: Final = ("message_too_large", "unknown_topic", "not_authorized")

# 1 ms .. 10 s: sub-ms is noise for a Kafka round trip, >10 s is an outage anyway.
LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_SECONDS_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
BATCH_RECORDS_BUCKETS: Final = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
SCORE_BUCKETS: Final = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
FLUSH_SECONDS_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

# Open-ended label values (topic names, DLQ error codes, partitions) are capped so a bug or
# a hostile producer cannot explode the series count; the overflow shares one child.
MAX_OPEN_VALUES: Final = 256
OVERFLOW: Final = "other"

C = TypeVar("C")


class Closeable(Protocol):
    """Anything with `close()`; returned by `start_metrics_server`."""

    def close(self) -> None: ...


class _Children(Generic[C]):
    """Cache of label children of one metric, with per-label allowed values.

    Validation and cardinality capping run on a cache miss only, so a hit is a dict lookup.
    """

    __slots__ = ("_allowed", "_cache", "_lock", "_metric")

    def __init__(
        self, metric: MetricWrapperBase, allowed: tuple[tuple[str, ...] | None, ...]
    ) -> None:
        self._metric = metric
        self._allowed = allowed
        self._cache: dict[tuple[str, ...], C] = {}
        self._lock = threading.Lock()

    def get(self, *values: str) -> C:
        try:
            return self._cache[values]
        except KeyError:
            return self._miss(values)

    def _miss(self, values: tuple[str, ...]) -> C:
        with self._lock:
            if values in self._cache:
                return self._cache[values]
            resolved = []
            for value, allowed in zip(values, self._allowed, strict=True):
                if allowed is not None and value not in allowed:
                    raise ValueError(f"label value {value!r} not in {allowed}")
                resolved.append(value)
            if len(self._cache) >= MAX_OPEN_VALUES:
                resolved = [
                    v if a is not None else OVERFLOW
                    for v, a in zip(resolved, self._allowed, strict=True)
                ]
            child: C = self._metric.labels(*resolved)  # type: ignore[assignment]
            self._cache[values] = child
            return child

    def prebind(self, combos: Iterable[tuple[str, ...]]) -> None:
        """Create children up front so their series exist at 0 (increase() sees the first +1)."""
        for combo in combos:
            self.get(*combo)


class WorkerMetrics:
    """All worker metrics on their own `CollectorRegistry`, with cached label children."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        ns = NAMESPACE

        # --- throughput and data quality
        self.records_consumed = Counter(
            "records_consumed_total",
            "Input records consumed, by topic and processing result.",
            ["topic", "result"],
            namespace=ns,
            registry=r,
        )
        self.dlq_records = Counter(
            "dlq_records_total",
            "Records sent to the dead-letter topic, by error.",
            ["error"],
            namespace=ns,
            registry=r,
        )
        self.batch_processing_seconds = Histogram(
            "batch_processing_seconds",
            "Wall time to process one consumed batch.",
            namespace=ns,
            registry=r,
            buckets=BATCH_SECONDS_BUCKETS,
        )
        self.batch_records = Histogram(
            "batch_records",
            "Records per processed batch.",
            namespace=ns,
            registry=r,
            buckets=BATCH_RECORDS_BUCKETS,
        )
        self.event_to_score_latency_seconds = Histogram(
            "event_to_score_latency_seconds",
            "Wall time from the record's Kafka timestamp to its score being published.",
            namespace=ns,
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.consumer_lag_records = Gauge(
            "consumer_lag_records",
            "Records between the committed offset and the log end.",
            ["topic", "partition"],
            namespace=ns,
            registry=r,
        )

        # --- state
        self.state_users = Gauge(
            "state_users", "Users held in this worker's state.", namespace=ns, registry=r
        )
        self.state_bytes = Gauge(
            "state_bytes", "Serialized size of this worker's user state.", namespace=ns, registry=r
        )
        self.pending_label_snapshots = Gauge(
            "pending_label_snapshots",
            "Predictions waiting for their churn label.",
            namespace=ns,
            registry=r,
        )
        self.state_flushes = Counter(
            "state_flushes_total", "State flushes to the changelog table.", namespace=ns, registry=r
        )
        self.state_flush_seconds = Histogram(
            "state_flush_seconds",
            "Wall time of one state flush.",
            namespace=ns,
            registry=r,
            buckets=FLUSH_SECONDS_BUCKETS,
        )
        self.output_send_retries = Counter(
            "output_send_retries_total",
            "Batches of outputs and state writes sent again after the broker refused or timed out.",
            namespace=ns,
            registry=r,
        )
        self.outputs_refused = Counter(
            "outputs_refused_total",
            "Outputs the broker refused for a reason no retry fixes: message_too_large (the "
            "record was dead-lettered, or a dead-letter record cut, instead), unknown_topic or "
            "not_authorized (the worker stops).",
            ["reason"],
            namespace=ns,
            registry=r,
        )
        self.state_quarantined = Counter(
            "state_quarantined_total",
            "Stored user records that could not be decoded: set aside (raw bytes in the "
            "dead-letter topic as corrupt_state) so the worker goes on without them.",
            namespace=ns,
            registry=r,
        )
        self.erasures = Counter(
            "erasures_total", "Users erased on request (privacy).", namespace=ns, registry=r
        )
        self.users_expired = Counter(
            "users_expired_total",
            "Users removed (state and changelog tombstone) after a silence longer than "
            "user_retention_days of event time.",
            namespace=ns,
            registry=r,
        )

        # --- model
        self.labels_learned = Counter(
            "labels_learned_total",
            "Labelled examples learned, by segment and label.",
            ["segment", "label"],
            namespace=ns,
            registry=r,
        )
        self.examples_duplicate = Counter(
            "examples_duplicate_total",
            "Labelled examples not learned because the same example was learned before (a "
            "worker sent it again after a crash).",
            namespace=ns,
            registry=r,
        )
        self.model_snapshots_unreadable = Counter(
            "model_snapshots_unreadable_total",
            "Model snapshots refused, by reason: unparsable, pickle (not trusted), unsigned or "
            "bad_signature (a signing key is set), unknown_features, wrong_segment; by a worker "
            "installing it (skipped, it scores on) or by the trainer restoring or adopting it "
            "(it keeps an older one or a fresh model).",
            ["reason"],
            namespace=ns,
            registry=r,
        )
        self.model_version = Gauge(
            "model_version",
            "Version of the segment's model in use (0 = rules only).",
            ["segment"],
            namespace=ns,
            registry=r,
        )
        self.model_age_seconds = Gauge(
            "model_age_seconds",
            "Wall seconds since the segment's model snapshot was made.",
            ["segment"],
            namespace=ns,
            registry=r,
        )
        self.model_auc = Gauge(
            "model_auc",
            "Prequential ROC AUC of the segment's model.",
            ["segment"],
            namespace=ns,
            registry=r,
        )
        self.model_log_loss = Gauge(
            "model_log_loss",
            "Prequential log loss of the segment's model.",
            ["segment"],
            namespace=ns,
            registry=r,
        )
        self.model_calibration_gap = Gauge(
            "model_calibration_gap",
            "Mean predicted score minus observed positive rate.",
            ["segment"],
            namespace=ns,
            registry=r,
        )
        self.drift_detections = Counter(
            "drift_detections_total",
            "Concept drift detections, by segment.",
            ["segment"],
            namespace=ns,
            registry=r,
        )

        # --- outputs
        self.risk_score = Histogram(
            "risk_score",
            "Distribution of published churn risk scores (0..1).",
            ["segment"],
            namespace=ns,
            registry=r,
            buckets=SCORE_BUCKETS,
        )
        self.scores = Counter(
            "scores_total",
            "Published risk scores, by segment and source (rules/model).",
            ["segment", "source"],
            namespace=ns,
            registry=r,
        )
        self.alerts = Counter(
            "alerts_total",
            "Alerts raised, by kind and severity.",
            ["kind", "severity"],
            namespace=ns,
            registry=r,
        )

        # --- worker
        self.build_info = Gauge(
            "build_info",
            "Always 1; the churnstream version running, as a label (join it to other series).",
            ["version"],
            namespace=ns,
            registry=r,
        )
        self.build_info.labels(_package_version()).set(1)
        self.worker_up = Gauge(
            "worker_up",
            "1 while the worker is running and assigned, else 0.",
            namespace=ns,
            registry=r,
        )
        self.rebalances = Counter(
            "rebalances_total",
            "Consumer group rebalances seen by this worker.",
            namespace=ns,
            registry=r,
        )
        self.decisions_held = Counter(
            "decisions_held_total",
            "Decisions held back: roi_source (a roi_drop decision while business.value lags), "
            "daily_source (a boundary's daily rows while an input source lags or has not "
            "started), daily_model (while no model snapshot learned the labels before it).",
            ["reason"],
            namespace=ns,
            registry=r,
        )
        self.decisions_at_limit = Counter(
            "decisions_at_limit_total",
            "Decisions taken at the wait limit without what they waited for: daily_model "
            "(rows scored without the model as of their day).",
            ["reason"],
            namespace=ns,
            registry=r,
        )
        self.sources_given_up = Counter(
            "sources_given_up_total",
            "Input sources (topic kinds) counted idle after lagging for source_wait_s without "
            "advancing: decisions went on without them.",
            ["kind"],
            namespace=ns,
            registry=r,
        )
        self.sources_waited_for = Gauge(
            "sources_waited_for",
            "Input sources (partitions, or kinds not started) decisions are waiting for now.",
            namespace=ns,
            registry=r,
        )
        self.events_held = Gauge(
            "events_held",
            "Valid events held back to be processed in event-time order.",
            namespace=ns,
            registry=r,
        )
        self.input_gaps = Counter(
            "input_gaps_total",
            "Jumps in an input partition's offsets: lost (records the consumer skipped, read "
            "again), empty (the broker holds no record there) or stalled (nothing delivered "
            "while the log end shows more, read again).",
            ["kind"],
            namespace=ns,
            registry=r,
        )
        self.input_repeats = Counter(
            "input_repeats_total",
            "Input records delivered again by the consumer and dropped (already taken).",
            namespace=ns,
            registry=r,
        )
        self.input_records_expired = Counter(
            "input_records_expired_total",
            "Input records removed by retention or delete-records before this group processed "
            "them (its committed offset was below the log start); processing went on from the "
            "log start.",
            ["topic"],
            namespace=ns,
            registry=r,
        )
        self.batches_dropped = Counter(
            "batches_dropped_total",
            "Batches dropped before their commit and read again from the committed offsets: "
            "fenced (the partitions were revoked or the group moved on while the batch was "
            "written) or failed (an error outside the per-record handling).",
            ["reason"],
            namespace=ns,
            registry=r,
        )
        self.events_released_early = Counter(
            "events_released_early_total",
            "Events released before their turn (a lagging input partition could still deliver "
            "an earlier one) because the event-time buffer was full or an event was held too "
            "long.",
            namespace=ns,
            registry=r,
        )
        self.input_partitions_paused = Gauge(
            "input_partitions_paused",
            "Input partitions not fetched for now: their events are ahead of a lagging "
            "partition's while many events are held (back-pressure during a catch-up).",
            namespace=ns,
            registry=r,
        )

        seg: tuple[str, ...] = SEGMENTS
        self._consumed: _Children[Counter] = _Children(self.records_consumed, (None, RESULTS))
        self._dlq: _Children[Counter] = _Children(self.dlq_records, (None,))
        self._refused: _Children[Counter] = _Children(self.outputs_refused, (REFUSALS,))
        self._refused.prebind((reason,) for reason in REFUSALS)
        self._lag: _Children[Gauge] = _Children(self.consumer_lag_records, (None, None))
        self._labels: _Children[Counter] = _Children(self.labels_learned, (seg, LABEL_VALUES))
        self._version: _Children[Gauge] = _Children(self.model_version, (seg,))
        self._age: _Children[Gauge] = _Children(self.model_age_seconds, (seg,))
        self._auc: _Children[Gauge] = _Children(self.model_auc, (seg,))
        self._log_loss: _Children[Gauge] = _Children(self.model_log_loss, (seg,))
        self._calib: _Children[Gauge] = _Children(self.model_calibration_gap, (seg,))
        self._drift: _Children[Counter] = _Children(self.drift_detections, (seg,))
        self._risk: _Children[Histogram] = _Children(self.risk_score, (seg,))
        self._scores: _Children[Counter] = _Children(self.scores, (seg, SCORE_SOURCES))
        self._alerts: _Children[Counter] = _Children(self.alerts, (ALERT_KINDS, SEVERITIES))
        self._gaps: _Children[Counter] = _Children(self.input_gaps, (GAP_KINDS,))
        self._dropped: _Children[Counter] = _Children(self.batches_dropped, (DROP_REASONS,))
        self._unreadable: _Children[Counter] = _Children(
            self.model_snapshots_unreadable, (SNAPSHOT_REFUSALS,)
        )

        # Bounded, known label sets exist at 0 from the start: rate()/increase() then see
        # the first event, and dashboards show 0 rather than "no data".
        self._labels.prebind((s, lv) for s in seg for lv in LABEL_VALUES)
        self._version.prebind((s,) for s in seg)
        self._drift.prebind((s,) for s in seg)
        self._scores.prebind((s, src) for s in seg for src in SCORE_SOURCES)
        self._alerts.prebind((k, sv) for k in ALERT_KINDS for sv in SEVERITIES)
        self._risk.prebind((s,) for s in seg)
        self._gaps.prebind((k,) for k in GAP_KINDS)
        self._dropped.prebind((r,) for r in DROP_REASONS)
        self._unreadable.prebind((r,) for r in SNAPSHOT_REFUSALS)

    # --- hot-path accessors: each returns a cached child (call .inc/.set/.observe on it)

    def consumed(self, topic: str, result: str) -> Counter:
        """Counter child of records consumed from `topic` with `result` (see RESULTS)."""
        return self._consumed.get(topic, result)

    def input_gap(self, kind: str) -> Counter:
        """Counter child of input offset jumps of `kind` (see GAP_KINDS)."""
        return self._gaps.get(kind)

    def batch_dropped(self, reason: str) -> Counter:
        """Counter child of batches dropped before their commit for `reason` (DROP_REASONS)."""
        return self._dropped.get(reason)

    def dlq(self, error: str) -> Counter:
        """Counter child of dead-lettered records with `error` (stream.contract.validation code)."""
        return self._dlq.get(error)

    def snapshot_refused(self, reason: str) -> None:
        """Count a model snapshot refused for `reason` (SNAPSHOT_REFUSALS)."""
        self._unreadable.get(reason).inc()

    def refused(self, reason: str) -> None:
        """Count outputs the broker refused for good, by reason (one of REFUSALS)."""
        self._refused.get(reason).inc()

    def lag(self, topic: str, partition: int) -> Gauge:
        """Gauge child of consumer lag of one topic partition."""
        return self._lag.get(topic, str(partition))

    def label_learned(self, segment: str, positive: bool) -> Counter:
        """Counter child of labels learned for `segment`."""
        return self._labels.get(segment, "positive" if positive else "negative")

    def observe_score(self, segment: str, source: str, score: float) -> None:
        """Record one published score of `segment` from `source` (rules/model)."""
        self._risk.get(segment).observe(score)
        self._scores.get(segment, source).inc()

    def alert(self, kind: str, severity: str) -> Counter:
        """Counter child of alerts of `kind` and `severity`."""
        return self._alerts.get(kind, severity)

    def drift(self, segment: str) -> Counter:
        """Counter child of drift detections of `segment`."""
        return self._drift.get(segment)

    def set_model(
        self,
        segment: str,
        *,
        version: int | None = None,
        age_seconds: float | None = None,
        auc: float | None = None,
        log_loss: float | None = None,
        calibration_gap: float | None = None,
    ) -> None:
        """Set the model gauges of `segment`; None leaves a gauge unchanged."""
        pairs: tuple[tuple[_Children[Gauge], float | None], ...] = (
            (self._version, version),
            (self._age, age_seconds),
            (self._auc, auc),
            (self._log_loss, log_loss),
            (self._calib, calibration_gap),
        )
        for children, value in pairs:
            if value is not None:
                children.get(segment).set(value)

    def observe_batch(self, records: int, seconds: float) -> None:
        """Record one processed batch of `records` that took `seconds` of wall time."""
        self.batch_records.observe(records)
        self.batch_processing_seconds.observe(seconds)

    def observe_flush(self, seconds: float) -> None:
        """Record one state flush that took `seconds`."""
        self.state_flushes.inc()
        self.state_flush_seconds.observe(seconds)

    def set_state(self, *, users: int, size_bytes: int, pending_snapshots: int) -> None:
        """Set the state gauges after a flush."""
        self.state_users.set(users)
        self.state_bytes.set(size_bytes)
        self.pending_label_snapshots.set(pending_snapshots)

    def family_names(self) -> set[str]:
        """Names as queried in PromQL: counters with `_total`, histograms by base name."""
        names: set[str] = set()
        for family in self.registry.collect():
            names.add(family.name + "_total" if family.type == "counter" else family.name)
        return names


def _package_version() -> str:
    try:
        return metadata.version("churnstream")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


# The standard collectors of prometheus_client (they live on its default registry): process
# memory, CPU, open files and start time, GC counts per generation, the Python version. They
# carry no labels but the generation and the interpreter's, so no user id can reach them.
STANDARD_COLLECTORS: Final = (PROCESS_COLLECTOR, GC_COLLECTOR, PLATFORM_COLLECTOR)


def served_registry(metrics: WorkerMetrics) -> CollectorRegistry:
    """What `/metrics` serves: the worker's families plus the standard process/GC/platform ones.

    The worker's registry stays churnstream_-only (its names are checked); the standard
    collectors are added here, read-only, so one endpoint shows both.
    """
    served = CollectorRegistry(auto_describe=True)
    for collector in (*STANDARD_COLLECTORS, metrics.registry):
        served.register(collector)
    return served


STANDARD_METRIC_NAMES: Final[frozenset[str]] = frozenset(
    family.name + "_total" if family.type == "counter" else family.name
    for collector in STANDARD_COLLECTORS
    for family in collector.collect()
)
"""Families of the standard collectors, as used in PromQL (empty parts where the platform
has no /proc: process_* then is absent)."""


@dataclass(slots=True)
class MetricsServer:
    """A running `/metrics` endpoint; `close()` stops it and frees the port."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    def close(self) -> None:
        """Stop serving, release the socket and join the serving thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


METRICS: Final = WorkerMetrics()
"""The process-wide worker metrics (its own registry; the global default one is unused)."""

METRIC_NAMES: Final[frozenset[str]] = frozenset(METRICS.family_names())
"""Every metric family name the worker exports, as used in PromQL (no _bucket/_sum/_count)."""


def start_metrics_server(
    host: str = "127.0.0.1", port: int = 9464, *, metrics: WorkerMetrics | None = None
) -> MetricsServer:
    """Serve `/metrics` of `metrics` (default `METRICS`) and the standard process, GC and
    platform metrics on `host:port`; close() stops it.

    Binds the given host only, so the default keeps the endpoint off public interfaces.
    `port=0` picks a free port; the bound one is in the returned `MetricsServer.port`.
    """
    registry = served_registry(metrics if metrics is not None else METRICS)
    server, thread = start_http_server(port, addr=host, registry=registry)
    bound_host, bound_port = server.server_address[:2]
    return MetricsServer(str(bound_host), int(bound_port), server, thread)
