"""The one typed settings object, read once from `CHURNSTREAM_*` environment variables.

Every attribute is documented in README.md ("Configuration"); defaults work on a laptop with
the local broker. `KAFKA_BOOTSTRAP_SERVERS` (no prefix) is honoured too because it is the
usual name in Kafka tooling and the broker choice starts from it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final, get_type_hints

from churnstream.stream.contract.events import SEGMENTS
from churnstream.stream.errors import ChurnstreamError

PREFIX: Final = "CHURNSTREAM_"
LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
# Bind addresses meaning "every interface": no other worker can reach a server there.
WILDCARD_HOSTS: Final = frozenset({"0.0.0.0", "::", "[::]"})  # noqa: S104 - recognised, not bound


class SettingsError(ChurnstreamError, ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    # Kafka
    bootstrap_servers: str = ""
    """Kafka bootstrap servers; empty = choose a broker (env, Docker, local Java broker)."""
    app_id: str = "churnstream"
    """Faust application id: consumer group and prefix of internal topics."""
    topic_prefix: str = ""
    """Prefix added to every topic name (e.g. `prod.`)."""
    partitions: int = 4
    """Partitions of the input, output and state topics created by `topics create`."""
    replication: int = 1
    """Replication factor of created topics."""
    max_record_bytes: int = 65536
    """Largest accepted record value; larger records go to the dead-letter topic."""

    # Worker
    data_dir: Path = Path(".churnstream/data")
    """Faust data directory (table stores)."""
    store: str = "memory://"
    """Faust table store: `memory://` (default) or `rocksdb://` (needs the rocksdb extra)."""
    web_host: str = "127.0.0.1"
    """Host the worker's web server (read API) binds to; beyond loopback a bearer token is
    required (CHURNSTREAM_WEB_TOKEN, docs/security.md)."""
    web_advertised_host: str = ""
    """Host other workers reach this worker's web server at (read API requests are routed to
    the user's owner there); empty = web_host, which must then not be a wildcard address."""
    web_port: int = 6066
    """Port of the worker's web server."""
    metrics_host: str = "127.0.0.1"
    """Host the Prometheus metrics endpoint binds to."""
    metrics_port: int = 9464
    """Port of the Prometheus metrics endpoint (0 disables it)."""
    flush_interval_s: float = 0.1
    """Longest wait, in wall seconds, for more records once a batch has its first one; each
    batch ends with one state flush (one table write per changed user)."""
    flush_max_events: int = 5000
    """Most records in one batch."""
    order_grace_s: float = 0.25
    """Wall seconds an event waits for input partitions that look caught up but have not
    delivered anything as late yet (event-time order across partitions); 0 = no wait."""
    segments: str = "course,saas,docs"
    """The segments this deployment serves, comma-separated: daily rows wait only for the
    input topics their customers produce (a topic no producer writes is not waited for)."""
    source_wait_s: float = 120.0
    """Wall seconds a decision waits for an input source that lags (or has not started) and
    does not advance; then the source counts as idle and decisions go on without it."""
    model_wait_s: float = 60.0
    """Wall seconds the daily rows of a boundary wait for a model snapshot that learned every
    label released before it; then they are scored with the models at hand."""
    output_timeout_s: float = 40.0
    """Wall seconds the broker has to acknowledge a batch of outputs and state writes before
    the worker sends it again (the worker waits, holding its inputs, until one succeeds)."""

    # Domain (event time)
    lateness_s: float = 86400.0
    """Allowed lateness of events, seconds of event time."""
    watermark_max_step_s: float = 86400.0
    """Event-time seconds an input source's progress may jump beyond the freshest one on a
    single event; a farther event moves it only once the next ones confirm the jump
    (model/watermark.py: CONFIRM_EVENTS far events in a row)."""
    max_future_skew_s: float = 86400.0
    """Seconds an event's time may run ahead of the worker's wall clock; later events go to the
    dead-letter topic (`future_timestamp`)."""
    horizon_course_days: float = 7.0
    horizon_saas_days: float = 14.0
    horizon_docs_days: float = 14.0
    score_min_interval_s: float = 0.0
    """Minimum event-time seconds between two published scores of one user (0 = every event)."""
    scoring: bool = True
    """False: keep per-user features only (read API, changelog); no scores, labels or alerts."""
    score_events: bool = True
    """False: publish only the daily scores (no score per event; cheaper)."""
    day_offset_s: float = 0.0
    """Daily scores are made as of each UTC midnight plus this offset, seconds in [0, 86400)."""
    gone_after_days: float = 30.0
    """Event-time days of silence after which a user gets no daily scores until it is back."""
    user_retention_days: float = 400.0
    """Event-time days of silence after which a user is removed (state deleted, a tombstone in
    the changelog, counted); 0 = users are kept forever. More than gone_after_days plus the
    longest horizon, so a removed user has no daily score or label left."""
    label_course: str = "either"
    """What churn means for course labels: cancel, inactivity, either or quiet."""
    label_saas: str = "cancel"
    """What churn means for saas labels: cancel, inactivity, either or quiet."""
    label_docs: str = "cancel"
    """What churn means for docs labels: cancel, inactivity, either or quiet."""
    label_quiet_days: int = 14
    """Quiet days of the `quiet` label: a spell this long after a last activity is churn; its
    labels are released this many days after their horizon."""
    min_labels: int = 200
    """Labels a segment's model must learn (both classes) before it replaces the rules score."""
    min_class_labels: int = 1
    """Of them, labels of each class (churned, stayed) it must have learned first."""
    estimator: str = "logistic"
    """River estimator of each segment's model: logistic (default), hoeffding, arf."""
    trust_pickled_snapshots: bool = False
    """Load pickled model snapshots (the tree estimators' and those written before format 2).
    Unpickling runs code: set it only if no one but the trainer can write `churn.models`."""
    snapshot_every: int = 500
    """The trainer publishes a model snapshot after this many learned examples."""
    alert_cooldown_days: float = 7.0
    """Event-time days before the same user and alert kind may alert again."""
    playbook_path: str = ""
    """Path of a playbook JSON file; empty = the packaged default."""
    alerts_config: str = ""
    """Path of a TOML file of per-segment alert thresholds, cooldowns and the A/B holdout
    experiment (docs/alerts.md); empty = the defaults of the code."""
    default_segment: str = "course"
    """Segment assumed for users whose lifecycle events were not seen yet."""
    log_level: str = "info"
    """Log level of every command and of the worker (one of LOG_LEVELS, any case); the
    command line's `--log-level`/`-v` win over it."""

    extra: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Other CHURNSTREAM_* variables (security settings read by stream.kafka.security; never shown:
    they may hold secrets)."""

    @property
    def deployed_segments(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.strip() for s in self.segments.split(",") if s.strip()))

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read settings from `env` (default os.environ); `overrides` win over both."""
        env = os.environ if env is None else env
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        known = set()
        for f in fields(cls):
            if f.name == "extra":
                continue
            var = PREFIX + f.name.upper()
            known.add(var)
            if var in env:
                values[f.name] = _convert(var, env[var], hints[f.name])
        if "bootstrap_servers" not in values and env.get("KAFKA_BOOTSTRAP_SERVERS"):
            values["bootstrap_servers"] = env["KAFKA_BOOTSTRAP_SERVERS"]
        values["extra"] = {k: v for k, v in env.items() if k.startswith(PREFIX) and k not in known}
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def replace(self, **changes: Any) -> Settings:
        new = dataclasses.replace(self, **changes)
        new.validate()
        return new

    def validate(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                value = getattr(self, name)
                raise SettingsError(f"{PREFIX}{name.upper()}={value!r}: {what}")

        need(self.partitions >= 1, "partitions", "must be >= 1")
        need(self.replication >= 1, "replication", "must be >= 1")
        need(1024 <= self.max_record_bytes <= 16 * 2**20, "max_record_bytes", "1 KiB..16 MiB")
        need(0 <= self.web_port < 65536, "web_port", "must be a TCP port")
        need(
            bool(self.web_advertised_host) or self.web_host not in WILDCARD_HOSTS,
            "web_host",
            "a wildcard bind address: set CHURNSTREAM_WEB_ADVERTISED_HOST to the address other "
            "workers reach this one at",
        )
        need(
            self.web_advertised_host not in WILDCARD_HOSTS,
            "web_advertised_host",
            "must be an address other workers can reach (not a wildcard)",
        )
        need(0 <= self.metrics_port < 65536, "metrics_port", "must be a TCP port (0 = off)")
        need(self.flush_interval_s > 0, "flush_interval_s", "must be > 0")
        need(self.flush_max_events >= 1, "flush_max_events", "must be >= 1")
        need(0 <= self.order_grace_s <= 10, "order_grace_s", "must be in [0, 10] seconds")
        need(
            bool(self.deployed_segments) and all(seg in SEGMENTS for seg in self.deployed_segments),
            "segments",
            f"comma-separated, each one of {', '.join(SEGMENTS)}",
        )
        need(self.source_wait_s >= 0, "source_wait_s", "must be >= 0")
        need(self.model_wait_s >= 0, "model_wait_s", "must be >= 0")
        need(self.watermark_max_step_s > 0, "watermark_max_step_s", "must be > 0")
        need(1 <= self.output_timeout_s <= 600, "output_timeout_s", "must be in [1, 600] seconds")
        need(self.lateness_s >= 0, "lateness_s", "must be >= 0")
        need(self.max_future_skew_s >= 0, "max_future_skew_s", "must be >= 0")
        for seg in SEGMENTS:
            need(getattr(self, f"horizon_{seg}_days") > 0, f"horizon_{seg}_days", "must be > 0")
        need(self.score_min_interval_s >= 0, "score_min_interval_s", "must be >= 0")
        need(0 <= self.day_offset_s < 86400, "day_offset_s", "must be in [0, 86400) seconds")
        need(self.gone_after_days > 0, "gone_after_days", "must be > 0")
        longest = max(
            getattr(self, f"horizon_{seg}_days")
            + (self.label_quiet_days if getattr(self, f"label_{seg}") == "quiet" else 0)
            for seg in SEGMENTS
        )
        need(
            self.user_retention_days == 0
            or self.user_retention_days > self.gone_after_days + longest,
            "user_retention_days",
            "0 (keep forever) or more than gone_after_days plus the longest label delay "
            "(horizon, + label_quiet_days for a quiet label)",
        )
        for seg in ("course", "saas", "docs"):
            need(
                getattr(self, f"label_{seg}") in {"cancel", "inactivity", "either", "quiet"},
                f"label_{seg}",
                "one of cancel, inactivity, either, quiet",
            )
            need(
                getattr(self, f"label_{seg}") != "quiet"
                or getattr(self, f"horizon_{seg}_days") + self.label_quiet_days + 1 <= 60,
                "label_quiet_days",
                f"horizon_{seg}_days + label_quiet_days + 1 must be <= 60 for a quiet label",
            )
            # A quiet label counts whole UTC days from the row's day (model/labels.py): with
            # boundaries off midnight, activity earlier that day would count as after the row.
            need(
                getattr(self, f"label_{seg}") != "quiet" or self.day_offset_s == 0,
                f"label_{seg}",
                "quiet needs CHURNSTREAM_DAY_OFFSET_S=0 (it counts whole UTC days)",
            )
        need(self.label_quiet_days >= 1, "label_quiet_days", "must be >= 1")
        need(self.min_labels >= 2, "min_labels", "must be >= 2")
        need(self.min_class_labels >= 1, "min_class_labels", "must be >= 1")
        need(self.snapshot_every >= 1, "snapshot_every", "must be >= 1")
        need(self.alert_cooldown_days >= 0, "alert_cooldown_days", "must be >= 0")
        need(
            self.estimator in {"logistic", "hoeffding", "arf"},
            "estimator",
            "one of logistic, hoeffding, arf",
        )
        need(
            self.estimator == "logistic" or self.trust_pickled_snapshots,
            "estimator",
            f"tree snapshots are pickles: also set {PREFIX}TRUST_PICKLED_SNAPSHOTS=true",
        )
        need(
            self.store.startswith(("memory://", "rocksdb://")),
            "store",
            "memory:// or rocksdb://",
        )
        need(self.default_segment in SEGMENTS, "default_segment", "a segment")
        # A missing playbook file is reported as this setting, like any other bad value.
        need(
            not self.playbook_path or Path(self.playbook_path).is_file(),
            "playbook_path",
            "no such file",
        )
        need(
            not self.alerts_config or Path(self.alerts_config).is_file(),
            "alerts_config",
            "no such file",
        )
        need(self.log_level.lower() in LOG_LEVELS, "log_level", f"one of {', '.join(LOG_LEVELS)}")


def _convert(var: str, raw: str, kind: Any) -> Any:
    try:
        if kind is bool:
            low = raw.strip().lower()
            if low in {"1", "true", "yes", "on"}:
                return True
            if low in {"0", "false", "no", "off"}:
                return False
            raise ValueError("expected true/false")
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is Path:
            return Path(raw)
        return raw
    except ValueError as exc:
        raise SettingsError(f"{var}={raw!r}: {exc}") from None
