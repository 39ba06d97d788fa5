"""Alert delivery, the pure part: sink and route configuration, routing, message bodies, signature.

`churnstream deliver` (agents/delivery.py) reads `churn.alerts` and hands each alert to the
sinks its routes name; everything it decides without I/O lives here so it is unit-tested
without a network (docs/delivery.md):

- `load_config` / `parse_config`: the TOML file, validated with one-line errors
  (`DeliveryConfigError`, "where: what is wrong"); secrets are read from the environment or a
  file and never appear in a repr or an error.
- `DeliveryConfig.sinks_for(alert)`: the union of the sinks of every route that matches the
  alert's segment, kind and severity (first-appearance order); `is_holdout(alert)`: holdout
  alerts are recorded but never delivered.
- `webhook_headers` (idempotency key = `alert_id`, HMAC-SHA256 signature of the body),
  `slack_body` (a Slack-compatible incoming-webhook message), `jsonl_line`.
- `RetryPolicy.delay(n)`: exponential back-off between attempts; `retryable(status)`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from churnstream.model.messages import phrase
from churnstream.stream.contract.alerts import ALERT_KINDS, CHURN_RISK, SEVERITIES
from churnstream.stream.contract.events import SEGMENTS

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "SINK_TYPES",
    "DeliveryConfig",
    "DeliveryConfigError",
    "RetryPolicy",
    "Route",
    "SinkConfig",
    "is_holdout",
    "jsonl_line",
    "load_config",
    "parse_config",
    "retryable",
    "sign",
    "slack_body",
    "slack_text",
    "webhook_headers",
]

WEBHOOK: Final = "webhook"
SLACK: Final = "slack"
JSONL: Final = "jsonl"
SINK_TYPES: Final = (WEBHOOK, SLACK, JSONL)

IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
SIGNATURE_HEADER: Final = "X-Churnstream-Signature"
ALERT_ID_HEADER: Final = "X-Churnstream-Alert-Id"

# Statuses worth another attempt: the server may answer differently later (overload, a
# timeout on its side, a rate limit). Any other 4xx will not change by retrying.
_RETRY_4XX: Final = frozenset({408, 425, 429})

_TOP_KEYS: Final = frozenset(
    {"dead_letter_topic", "group_id", "start", "max_in_flight", "sinks", "routes"}
)
_SINK_KEYS: Final = frozenset(
    {
        "name",
        "type",
        "url",
        "url_env",
        "secret_env",
        "secret_file",
        "path",
        "timeout_s",
        "max_attempts",
        "backoff_s",
        "backoff_max_s",
    }
)
_ROUTE_KEYS: Final = frozenset({"sinks", "segments", "kinds", "severities"})
STARTS: Final = ("earliest", "latest")


class DeliveryConfigError(ValueError):
    """The delivery configuration cannot be used; the message is one line naming the key."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts of one sink for one alert: at most `max_attempts`, each limited to `timeout_s`,
    waiting `backoff_s * 2**(n-1)` (at most `backoff_max_s`) after the n-th failure."""

    max_attempts: int = 5
    timeout_s: float = 10.0
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0

    def delay(self, failed: int) -> float:
        """Seconds to wait after the `failed`-th failed attempt (1-based)."""
        return min(self.backoff_s * 2.0 ** (failed - 1), self.backoff_max_s)


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """One configured sink. `url` and `secret` are kept out of the repr: a Slack incoming
    webhook's URL is itself a credential."""

    name: str
    type: str
    url: str = field(default="", repr=False)
    path: str = ""
    secret: bytes | None = field(default=None, repr=False)
    retry: RetryPolicy = RetryPolicy()


@dataclass(frozen=True, slots=True)
class Route:
    """Alerts whose segment, kind and severity are each in the route's sets (None = any) go
    to `sinks`."""

    sinks: tuple[str, ...]
    segments: frozenset[str] | None = None
    kinds: frozenset[str] | None = None
    severities: frozenset[str] | None = None

    def matches(self, alert: Mapping[str, Any]) -> bool:
        return all(
            allowed is None or alert.get(key) in allowed
            for key, allowed in (
                ("segment", self.segments),
                ("kind", self.kinds),
                ("severity", self.severities),
            )
        )


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """Sinks by name, routes, and where alerts that cannot be delivered go."""

    sinks: Mapping[str, SinkConfig]
    routes: tuple[Route, ...]
    dead_letter_topic: str = "churn.dlq"
    group_id: str = ""
    start: str = "earliest"
    max_in_flight: int = 16

    def sinks_for(self, alert: Mapping[str, Any]) -> tuple[str, ...]:
        """Every sink of every route the alert matches, each once, in order of appearance."""
        names: dict[str, None] = {}
        for route in self.routes:
            if route.matches(alert):
                names.update(dict.fromkeys(route.sinks))
        return tuple(names)


def is_holdout(alert: Mapping[str, Any]) -> bool:
    """True for an alert of a user in the experiment's holdout arm: recorded, never sent."""
    return alert.get("holdout") is True


# -- configuration ----------------------------------------------------------------------------


def load_config(path: str | Path, env: Mapping[str, str]) -> DeliveryConfig:
    """Read and validate a TOML delivery configuration; secrets come from `env` or files."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DeliveryConfigError(f"{p}: not valid TOML: {exc}") from None
    try:
        return parse_config(doc, env, _read_secret_file)
    except DeliveryConfigError as exc:
        raise DeliveryConfigError(f"{p}: {exc}") from None


def _read_secret_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes().strip()
    except OSError as exc:
        raise DeliveryConfigError(f"cannot read ({exc.strerror})") from None


def parse_config(
    doc: Mapping[str, Any],
    env: Mapping[str, str],
    read_file: Callable[[str], bytes] = _read_secret_file,
) -> DeliveryConfig:
    """Validate a parsed configuration; raise `DeliveryConfigError` naming the first bad key."""
    _no_unknown(doc, _TOP_KEYS, "")
    raw_sinks = _table_list(doc, "sinks")
    if not raw_sinks:
        raise DeliveryConfigError("sinks: at least one [[sinks]] table is required")
    sinks: dict[str, SinkConfig] = {}
    for i, raw in enumerate(raw_sinks):
        sink = _sink(raw, f"sinks[{i}]", env, read_file)
        if sink.name in sinks:
            raise DeliveryConfigError(f"sinks[{i}].name: {sink.name!r} is used twice")
        sinks[sink.name] = sink
    raw_routes = _table_list(doc, "routes")
    if not raw_routes:
        raise DeliveryConfigError("routes: at least one [[routes]] table is required")
    routes = tuple(_route(raw, f"routes[{i}]", sinks) for i, raw in enumerate(raw_routes))
    start = _str(doc, "start", "", "earliest")
    if start not in STARTS:
        raise DeliveryConfigError(f"start: must be one of {', '.join(STARTS)} (got {start!r})")
    return DeliveryConfig(
        sinks=sinks,
        routes=routes,
        dead_letter_topic=_str(doc, "dead_letter_topic", "", "churn.dlq"),
        group_id=_str(doc, "group_id", "", ""),
        start=start,
        max_in_flight=int(_number(doc, "max_in_flight", "", 16, minimum=1, integer=True)),
    )


def _sink(
    raw: Mapping[str, Any], where: str, env: Mapping[str, str], read_file: Callable[[str], bytes]
) -> SinkConfig:
    _no_unknown(raw, _SINK_KEYS, where)
    name = _str(raw, "name", where, None)
    kind = _str(raw, "type", where, None)
    if kind not in SINK_TYPES:
        raise DeliveryConfigError(
            f"{where}.type: must be one of {', '.join(SINK_TYPES)} (got {kind!r})"
        )
    allowed = {
        WEBHOOK: {"url", "url_env", "secret_env", "secret_file"},
        SLACK: {"url", "url_env"},
        JSONL: {"path"},
    }[kind]
    common = {"name", "type", "timeout_s", "max_attempts", "backoff_s", "backoff_max_s"}
    stray = sorted(set(raw) - allowed - common)
    if stray:
        raise DeliveryConfigError(f"{where}.{stray[0]}: not a setting of a {kind} sink")
    retry = RetryPolicy(
        max_attempts=int(_number(raw, "max_attempts", where, 5, minimum=1, integer=True)),
        timeout_s=_number(raw, "timeout_s", where, 10.0, minimum=0.001),
        backoff_s=_number(raw, "backoff_s", where, 0.5, minimum=0.0),
        backoff_max_s=_number(raw, "backoff_max_s", where, 30.0, minimum=0.0),
    )
    if kind == JSONL:
        return SinkConfig(name, kind, path=_str(raw, "path", where, None), retry=retry)
    url = _from_value_or_env(raw, "url", where, env)
    if url is None:
        raise DeliveryConfigError(f"{where}: needs url or url_env")
    if not url.startswith(("http://", "https://")):
        # Not echoed: the URL may carry a token.
        raise DeliveryConfigError(f"{where}.url: must start with http:// or https://")
    secret: bytes | None = None
    if "secret_env" in raw and "secret_file" in raw:
        raise DeliveryConfigError(f"{where}: give secret_env or secret_file, not both")
    if "secret_env" in raw:
        var = _str(raw, "secret_env", where, None)
        if not env.get(var):
            raise DeliveryConfigError(f"{where}.secret_env: environment variable {var} is not set")
        secret = env[var].encode()
    elif "secret_file" in raw:
        path = _str(raw, "secret_file", where, None)
        try:
            secret = read_file(path)
        except DeliveryConfigError as exc:
            raise DeliveryConfigError(f"{where}.secret_file: {path}: {exc}") from None
        if not secret:
            raise DeliveryConfigError(f"{where}.secret_file: {path} is empty")
    return SinkConfig(name, kind, url=url, secret=secret, retry=retry)


def _from_value_or_env(
    raw: Mapping[str, Any], key: str, where: str, env: Mapping[str, str]
) -> str | None:
    if key in raw and f"{key}_env" in raw:
        raise DeliveryConfigError(f"{where}: give {key} or {key}_env, not both")
    if key in raw:
        return _str(raw, key, where, None)
    if f"{key}_env" in raw:
        var = _str(raw, f"{key}_env", where, None)
        if not env.get(var):
            raise DeliveryConfigError(f"{where}.{key}_env: environment variable {var} is not set")
        return env[var]
    return None


def _route(raw: Mapping[str, Any], where: str, sinks: Mapping[str, SinkConfig]) -> Route:
    _no_unknown(raw, _ROUTE_KEYS, where)
    names = _str_list(raw, "sinks", where, None)
    if not names:
        raise DeliveryConfigError(f"{where}.sinks: name at least one sink")
    for name in names:
        if name not in sinks:
            raise DeliveryConfigError(f"{where}.sinks: no sink named {name!r}")
    return Route(
        sinks=tuple(names),
        segments=_choice_set(raw, "segments", where, SEGMENTS),
        kinds=_choice_set(raw, "kinds", where, ALERT_KINDS),
        severities=_choice_set(raw, "severities", where, SEVERITIES),
    )


def _choice_set(
    raw: Mapping[str, Any], key: str, where: str, choices: Sequence[str]
) -> frozenset[str] | None:
    if key not in raw:
        return None
    values = _str_list(raw, key, where, None)
    for value in values:
        if value not in choices:
            raise DeliveryConfigError(
                f"{where}.{key}: unknown value {value!r} (one of {', '.join(choices)})"
            )
    return frozenset(values)


def _no_unknown(raw: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        prefix = f"{where}." if where else ""
        raise DeliveryConfigError(f"{prefix}{unknown[0]}: unknown key")


def _table_list(doc: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    raw = doc.get(key, [])
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise DeliveryConfigError(f"{key}: must be an array of tables ([[{key}]])")
    return raw


def _str(raw: Mapping[str, Any], key: str, where: str, default: str | None) -> str:
    name = f"{where}.{key}" if where else key
    if key not in raw:
        if default is None:
            raise DeliveryConfigError(f"{name}: required")
        return default
    value = raw[key]
    if not isinstance(value, str) or not value:
        raise DeliveryConfigError(f"{name}: must be a non-empty string")
    return value


def _str_list(raw: Mapping[str, Any], key: str, where: str, default: list[str] | None) -> list[str]:
    if key not in raw:
        if default is None:
            raise DeliveryConfigError(f"{where}.{key}: required")
        return default
    value = raw[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DeliveryConfigError(f"{where}.{key}: must be a list of strings")
    return value


def _number(
    raw: Mapping[str, Any],
    key: str,
    where: str,
    default: float,
    *,
    minimum: float,
    integer: bool = False,
) -> float:
    name = f"{where}.{key}" if where else key
    if key not in raw:
        return default
    value = raw[key]
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not math.isfinite(value) or value < minimum:
        what = "an integer" if integer else "a number"
        raise DeliveryConfigError(f"{name}: must be {what} >= {minimum:g} (got {value!r})")
    return float(value)


# -- what is sent -----------------------------------------------------------------------------


def sign(secret: bytes, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the body>`: the receiver recomputes it with the shared
    secret and compares in constant time (`hmac.compare_digest`)."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def webhook_headers(alert: Mapping[str, Any], body: bytes, secret: bytes | None) -> dict[str, str]:
    """Headers of a webhook POST: JSON, the idempotency key (`alert_id`: a redelivered alert
    carries the same one), and the signature when a secret is configured."""
    alert_id = str(alert.get("alert_id", ""))
    headers = {
        "Content-Type": "application/json",
        IDEMPOTENCY_HEADER: alert_id,
        ALERT_ID_HEADER: alert_id,
    }
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    return headers


def retryable(status: int) -> bool:
    """Whether an HTTP answer with `status` deserves another attempt (5xx, 408, 425, 429)."""
    return status >= 500 or status in _RETRY_4XX


def _escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _num(value: Any, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "?"


def slack_text(alert: Mapping[str, Any]) -> str:
    """A few lines for people: customer, risk, drivers, action."""
    kind = alert.get("kind")
    severity = str(alert.get("severity", ""))
    what = "Churn risk" if kind == CHURN_RISK else "ROI drop"
    measure = "risk" if kind == CHURN_RISK else "ROI 7d"
    lines = [
        f"*{what} ({_escape(severity)})*: customer `{_escape(str(alert.get('user_id', '?')))}` "
        f"({_escape(str(alert.get('segment', '?')))}), {measure} {_num(alert.get('value'))} "
        f"(threshold {_num(alert.get('threshold'))}) at {_escape(str(alert.get('ts', '?')))}"
    ]
    probability = alert.get("probability")
    if isinstance(probability, int | float):
        horizon = alert.get("horizon_days")
        within = f" within {horizon:g} days" if isinstance(horizon, int | float) else ""
        lines.append(f"Probability of churning{within}: {probability:.0%}")
    rank = alert.get("percentile")
    if isinstance(rank, int | float):
        lines.append(f"Percentile among today's scores of the segment: {rank:g}")
    revenue = alert.get("revenue_at_risk")
    if isinstance(revenue, int | float):
        lines.append(f"Revenue at risk: {revenue:.2f}")
    drivers = [
        phrase(str(d["feature"]), float(d["value"]))
        for d in alert.get("drivers") or ()
        if isinstance(d, dict) and isinstance(d.get("value"), int | float) and "feature" in d
    ]
    if drivers:
        lines.append("Why: " + _escape("; ".join(drivers)))
    action = alert.get("action")
    if isinstance(action, dict) and action.get("text"):
        code = str(action.get("code", "")).replace("_", " ")
        lines.append(f"Suggested action ({_escape(code)}): {_escape(str(action['text']))}")
    return "\n".join(lines)


def slack_body(alert: Mapping[str, Any]) -> bytes:
    """JSON body of a Slack-compatible incoming-webhook POST."""
    return orjson.dumps({"text": slack_text(alert)})


def jsonl_line(raw: bytes) -> bytes:
    """One line of the JSONL sink: the alert record as received (compact JSON) and a newline."""
    return orjson.dumps(orjson.loads(raw)) + b"\n"
