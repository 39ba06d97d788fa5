"""agents.metrics: naming, bounded labels, the cached facade, and the dashboard/rules queries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from churnstream.agents.metrics import (
    LATENCY_BUCKETS,
    MAX_OPEN_VALUES,
    METRIC_NAMES,
    OVERFLOW,
    RESULTS,
    SCORE_BUCKETS,
    STANDARD_METRIC_NAMES,
    WorkerMetrics,
    served_registry,
)
from churnstream.stream.contract.events import SEGMENTS

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "churnstream.json"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"

ALLOWED_LABELS = {
    "topic",
    "segment",
    "kind",
    "severity",
    "error",
    "result",
    "source",
    "label",
    "partition",
    "reason",
    "version",
}
FORBIDDEN_LABELS = {"user", "user_id", "userid", "customer", "customer_id", "account"}
SUFFIXES = ("_bucket", "_sum", "_count", "_created")

PROMQL_WORDS = {
    # aggregations, keywords and operators spelled as words
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
    "inf",
    "nan",
}
# Inner parts to drop before looking for metric names: strings, label matchers, ranges,
# grouping label lists and Grafana variables.
_STRIP = (
    re.compile(r'"(?:[^"\\]|\\.)*"'),
    re.compile(r"\{[^}]*\}"),
    re.compile(r"\[[^\]]*\]"),
    re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"),
    re.compile(r"\$\{?\w+\}?"),
)
_IDENT = re.compile(r"(?<![\w.:$])([a-zA-Z_:][\w:]*+)(?!\s*\()")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression reads (functions, keywords and label names excluded)."""
    for pattern in _STRIP:
        expr = pattern.sub(" ", expr)
    names = {m.group(1) for m in _IDENT.finditer(expr)} - PROMQL_WORDS
    return {_base_name(n) for n in names}


def _base_name(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _rule_exprs(text: str) -> list[str]:
    """`expr:` values of rules.yml (single line or `>-` folded block); no YAML lib needed."""
    exprs: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)expr:\s*(.*)$", line)
        if not m:
            continue
        indent, value = len(m.group(1)), m.group(2).strip()
        if value not in (">-", ">", "|", "|-"):
            exprs.append(value)
            continue
        block = []
        for nxt in lines[i + 1 :]:
            if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                break
            block.append(nxt.strip())
        exprs.append(" ".join(block))
    return exprs


def _exercised() -> WorkerMetrics:
    """A fresh WorkerMetrics with every family touched, so every family has samples."""
    m = WorkerMetrics()
    m.consumed("behaviour.logins", "ok").inc(3)
    m.dlq("bad_json").inc()
    m.observe_batch(10, 0.02)
    m.event_to_score_latency_seconds.observe(0.004)
    m.lag("behaviour.logins", 0).set(12)
    m.set_state(users=5, size_bytes=1024, pending_snapshots=2)
    m.observe_flush(0.003)
    m.erasures.inc()
    m.label_learned("saas", positive=True).inc()
    m.set_model("saas", version=3, age_seconds=60.0, auc=0.8, log_loss=0.4, calibration_gap=0.01)
    m.drift("saas").inc()
    m.observe_score("saas", "model", 0.42)
    m.alert("churn_risk", "critical").inc()
    m.worker_up.set(1)
    m.rebalances.inc()
    m.refused("message_too_large")
    m.state_quarantined.inc()
    m.decisions_held.labels("daily_source").inc()
    m.decisions_at_limit.labels("daily_model").inc()
    m.sources_given_up.labels("value").inc()
    m.sources_waited_for.set(1)
    m.input_records_expired.labels("behaviour.logins").inc(7)
    return m


# ------------------------------------------------------------------------- naming and labels


def test_names_follow_prometheus_conventions() -> None:
    m = WorkerMetrics()
    for family in m.registry.collect():
        assert re.fullmatch(r"churnstream_[a-z][a-z0-9_]*", family.name), family.name
        assert "__" not in family.name
        assert not re.search(r"_(ms|milliseconds|millis|kb|mb|minutes|hours)(_|$)", family.name)
        if family.type == "counter":
            assert not family.name.endswith("_total")  # the client adds it once
        else:
            assert not family.name.endswith("_total"), family.name
    time_histograms = {
        n for n in METRIC_NAMES if "latency" in n or "processing" in n or "flush_seconds" in n
    }
    assert all(n.endswith("_seconds") for n in time_histograms)


def test_labels_are_bounded_and_never_per_user() -> None:
    m = _exercised()
    for family in m.registry.collect():
        for sample in family.samples:
            labels = set(sample.labels) - {"le"}
            assert not labels & FORBIDDEN_LABELS, (sample.name, labels)
            assert labels <= ALLOWED_LABELS, (sample.name, labels)
            if "partition" in labels:
                assert family.name == "churnstream_consumer_lag_records"


def test_metric_names_match_the_registry() -> None:
    text = generate_latest(_exercised().registry).decode()
    typed = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    typed = {n for n in typed if not n.endswith("_created")}
    sample_names = {
        line.split("{")[0].split()[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    sampled = {_base_name(n) for n in sample_names if not n.endswith("_created")}
    assert typed == set(METRIC_NAMES)
    assert sampled == set(METRIC_NAMES)
    assert WorkerMetrics().family_names() == set(METRIC_NAMES)


def test_required_families_exist() -> None:
    required = {
        "churnstream_records_consumed_total",
        "churnstream_dlq_records_total",
        "churnstream_batch_processing_seconds",
        "churnstream_event_to_score_latency_seconds",
        "churnstream_consumer_lag_records",
        "churnstream_state_users",
        "churnstream_state_bytes",
        "churnstream_pending_label_snapshots",
        "churnstream_labels_learned_total",
        "churnstream_model_version",
        "churnstream_model_age_seconds",
        "churnstream_model_auc",
        "churnstream_model_log_loss",
        "churnstream_model_calibration_gap",
        "churnstream_drift_detections_total",
        "churnstream_risk_score",
        "churnstream_scores_total",
        "churnstream_alerts_total",
        "churnstream_worker_up",
        "churnstream_rebalances_total",
        "churnstream_erasures_total",
        "churnstream_state_flushes_total",
        "churnstream_state_flush_seconds",
    }
    assert required <= METRIC_NAMES


def test_buckets() -> None:
    assert LATENCY_BUCKETS[0] == 0.001
    assert LATENCY_BUCKETS[-1] == 10.0
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)
    assert [round(b, 1) for b in SCORE_BUCKETS] == [round(0.1 * i, 1) for i in range(1, 11)]


# ---------------------------------------------------------------------------------- facade


def test_consumed_child_is_cached_and_counts() -> None:
    m = WorkerMetrics()
    child = m.consumed("behaviour.logins", "duplicate")
    assert m.consumed("behaviour.logins", "duplicate") is child
    child.inc(4)
    m.consumed("behaviour.logins", "duplicate").inc()
    value = m.registry.get_sample_value(
        "churnstream_records_consumed_total", {"topic": "behaviour.logins", "result": "duplicate"}
    )
    assert value == 5


@pytest.mark.parametrize(
    ("call", "args"),
    [
        ("consumed", ("t", "weird")),
        ("label_learned", ("nosuchsegment", True)),
        ("alert", ("churn_risk", "info")),
        ("drift", ("x",)),
    ],
)
def test_unknown_bounded_label_values_are_rejected(call: str, args: tuple[object, ...]) -> None:
    with pytest.raises(ValueError, match="not in"):
        getattr(WorkerMetrics(), call)(*args)


def test_open_label_values_overflow_into_one_child() -> None:
    m = WorkerMetrics()
    for i in range(MAX_OPEN_VALUES + 10):
        m.dlq(f"error_{i}").inc()
    errors = {
        s.labels["error"]
        for f in m.registry.collect()
        for s in f.samples
        if s.name == "churnstream_dlq_records_total"
    }
    assert len(errors) == MAX_OPEN_VALUES + 1
    assert m.registry.get_sample_value("churnstream_dlq_records_total", {"error": OVERFLOW}) == 10


def test_known_label_sets_start_at_zero() -> None:
    m = WorkerMetrics()
    for segment in SEGMENTS:
        assert (
            m.registry.get_sample_value("churnstream_drift_detections_total", {"segment": segment})
            == 0
        )
    assert (
        m.registry.get_sample_value(
            "churnstream_alerts_total", {"kind": "roi_drop", "severity": "warning"}
        )
        == 0
    )


def test_score_set_model_and_state() -> None:
    m = WorkerMetrics()
    m.observe_score("course", "rules", 0.35)
    m.set_model("course", version=7, auc=0.9)
    m.set_model("course", auc=None, log_loss=0.3)
    m.set_state(users=11, size_bytes=2048, pending_snapshots=3)
    get = m.registry.get_sample_value
    assert get("churnstream_risk_score_bucket", {"segment": "course", "le": "0.3"}) == 0
    assert get("churnstream_risk_score_bucket", {"segment": "course", "le": "0.4"}) == 1
    assert get("churnstream_scores_total", {"segment": "course", "source": "rules"}) == 1
    assert get("churnstream_model_version", {"segment": "course"}) == 7
    assert get("churnstream_model_auc", {"segment": "course"}) == 0.9
    assert get("churnstream_model_log_loss", {"segment": "course"}) == 0.3
    assert get("churnstream_state_users") == 11
    assert get("churnstream_state_bytes") == 2048
    assert get("churnstream_pending_label_snapshots") == 3


def test_results_cover_the_contract_outcomes() -> None:
    assert set(RESULTS) == {
        "ok",
        "invalid",
        "duplicate",
        "late",
        "too_late",
        "redelivered",
        "rekeyed",
    }


# ----------------------------------------------------------------- dashboard and rule queries


def test_promql_metric_names_parser() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, topic) (rate(foo_seconds_bucket{a="b"}[5m])))'
        " / on (job) group_left bar_total offset 5m > bool 0.5"
        ' or absent(up{job="x"}) and baz $__rate_interval'
    )
    assert promql_metric_names(expr) == {"foo_seconds", "bar_total", "up", "baz"}


def test_dashboard_is_valid_and_uses_only_defined_metrics() -> None:
    dash = json.loads(DASHBOARD.read_text())
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    rows = [p["title"] for p in panels if p["type"] == "row"]
    for wanted in ("Throughput and lag", "Latency", "Data quality", "Model", "Alerts", "State"):
        assert wanted in rows
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert exprs
    used: set[str] = set()
    for expr in exprs:
        names = promql_metric_names(expr)
        assert names, expr
        known = METRIC_NAMES | STANDARD_METRIC_NAMES | {"up"}
        assert names <= known, (expr, names - known)
        used |= names
    # Every family is shown somewhere, so a new metric does not silently go unwatched.
    assert METRIC_NAMES - used == set()
    assert {"process_resident_memory_bytes", "python_gc_collections_total"} <= used


def test_dashboard_has_variables_and_no_fixed_datasource() -> None:
    text = DASHBOARD.read_text()
    dash = json.loads(text)
    names = [v["name"] for v in dash["templating"]["list"]]
    assert names == ["datasource", "job", "instance", "segment"]
    # Every query panel reads the chosen data source; no uid of one Grafana is baked in.
    uids = re.findall(r'"datasource":\s*\{[^}]*"uid":\s*"([^"]*)"', text)
    assert uids and set(uids) == {"${datasource}"}
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            # Each deployment and worker can be picked apart, so nothing sums them together.
            assert 'job=~"$job"' in target["expr"], target["expr"]
            assert 'instance=~"$instance"' in target["expr"], target["expr"]


def test_served_endpoint_has_standard_and_build_metrics() -> None:
    text = generate_latest(served_registry(WorkerMetrics())).decode()
    assert "python_gc_collections_total{" in text
    assert 'python_info{implementation="' in text
    assert re.search(r'^churnstream_build_info\{version="[^"]+"\} 1\.0$', text, re.M)
    if Path("/proc/self/stat").exists():
        assert "process_resident_memory_bytes " in text
    # The worker's own registry stays churnstream_-only.
    own = generate_latest(WorkerMetrics().registry).decode()
    assert "python_gc_" not in own


def test_alert_rules_use_only_defined_metrics() -> None:
    text = RULES.read_text()
    exprs = _rule_exprs(text)
    assert len(exprs) == len(re.findall(r"^\s*- alert: ", text, re.M))
    for expr in exprs:
        names = promql_metric_names(expr)
        assert names, expr
        assert names <= METRIC_NAMES | {"up"}, (expr, names - METRIC_NAMES)


def test_refused_snapshots_are_counted_by_a_bounded_reason() -> None:
    from churnstream.model.snapshot_signing import REASONS

    m = WorkerMetrics()
    m.snapshot_refused("bad_signature")
    text = generate_latest(m.registry).decode()
    name = "churnstream_model_snapshots_unreadable_total"
    for reason in REASONS:  # every reason exists from the start
        value = 1.0 if reason == "bad_signature" else 0.0
        assert f'{name}{{reason="{reason}"}} {value}' in text
    with pytest.raises(ValueError, match="not in"):
        m.snapshot_refused("user-42")  # never a free-form (or per-user) label
