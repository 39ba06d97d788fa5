"""model.delivery: configuration validation, routing, bodies, signature, back-off (pure)."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import orjson
import pytest

from churnstream.model.delivery import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    DeliveryConfigError,
    RetryPolicy,
    is_holdout,
    jsonl_line,
    load_config,
    parse_config,
    retryable,
    sign,
    slack_body,
    slack_text,
    webhook_headers,
)

ALERT: dict[str, Any] = {
    "alert_id": "d2234b34dda2ea8ae472f780bf2bbd15",
    "kind": "churn_risk",
    "user_id": "u<1>",
    "segment": "saas",
    "ts": "2026-02-02T02:40:00.000Z",
    "severity": "critical",
    "value": 0.82,
    "threshold": 0.5,
    "drivers": [
        {"feature": "trend_watch_minutes", "value": 0.3, "contribution": 1.2},
        {"feature": "rewinds_per_min_7d", "value": 0.23, "contribution": 0.8},
    ],
    "action": {"code": "integration_support", "text": "Call about the failing sync & fix it."},
    "message": "Risk 0.82 (critical)",
}


def config_doc(**top: Any) -> dict[str, Any]:
    return {
        "sinks": [
            {"name": "crm", "type": "webhook", "url": "http://127.0.0.1:1/h", "secret_env": "S"},
            {"name": "chat", "type": "slack", "url_env": "SLACK_URL"},
            {"name": "file", "type": "jsonl", "path": "/tmp/x.jsonl"},
        ],
        "routes": [
            {"sinks": ["crm", "chat"], "segments": ["saas"], "severities": ["critical"]},
            {"sinks": ["file", "crm"], "kinds": ["churn_risk"]},
        ],
        **top,
    }


ENV = {"S": "topsecret", "SLACK_URL": "https://hooks.example.com/T000/B000/XXXX"}


def test_routes_union_in_first_appearance_order() -> None:
    config = parse_config(config_doc(), ENV)
    assert config.sinks_for(ALERT) == ("crm", "chat", "file")
    assert config.sinks_for({**ALERT, "severity": "warning"}) == ("file", "crm")
    assert config.sinks_for({**ALERT, "kind": "roi_drop", "segment": "course"}) == ()


def test_defaults_and_secrets_resolved() -> None:
    config = parse_config(config_doc(), ENV)
    assert config.dead_letter_topic == "churn.dlq"
    assert config.start == "earliest"
    assert config.max_in_flight == 16
    assert config.sinks["crm"].secret == b"topsecret"
    assert config.sinks["chat"].url == ENV["SLACK_URL"]
    assert config.sinks["crm"].retry == RetryPolicy()


def test_secrets_and_urls_never_in_repr() -> None:
    config = parse_config(config_doc(), ENV)
    text = repr(config)
    assert "topsecret" not in text
    assert "XXXX" not in text
    assert "127.0.0.1:1" not in text


def test_secret_file_is_read_and_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "s"
    secret.write_text("filesecret\n")
    doc = config_doc()
    doc["sinks"][0] = {
        "name": "crm",
        "type": "webhook",
        "url": "https://x",
        "secret_file": str(secret),
    }
    assert parse_config(doc, ENV).sinks["crm"].secret == b"filesecret"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["routes"][1].update(kinds=["churn"]),
            "routes[1].kinds: unknown value 'churn'",
        ),
        (lambda d: d["routes"][0].update(sinks=["nope"]), "routes[0].sinks: no sink named 'nope'"),
        (lambda d: d["routes"][0].update(segments="saas"), "routes[0].segments: must be a list"),
        (lambda d: d["sinks"][0].update(type="mail"), "sinks[0].type: must be one of"),
        (lambda d: d["sinks"][2].update(url="http://x"), "sinks[2].url: not a setting of a jsonl"),
        (lambda d: d["sinks"][1].update(name="crm"), "sinks[1].name: 'crm' is used twice"),
        (
            lambda d: d["sinks"][0].update(max_attempts=0),
            "sinks[0].max_attempts: must be an integer >= 1",
        ),
        (lambda d: d["sinks"][0].update(timeout_s="5"), "sinks[0].timeout_s: must be a number"),
        (
            lambda d: d["sinks"][0].update(secret_env="MISSING"),
            "environment variable MISSING is not set",
        ),
        (lambda d: d["sinks"][0].update(url="ftp://x"), "sinks[0].url: must start with http"),
        (lambda d: d["sinks"][0].pop("url"), "sinks[0]: needs url or url_env"),
        (
            lambda d: d["sinks"][1].update(url="https://y"),
            "sinks[1]: give url or url_env, not both",
        ),
        (lambda d: d.update(start="now"), "start: must be one of earliest, latest"),
        (lambda d: d.update(extra=1), "extra: unknown key"),
        (lambda d: d["routes"][0].update(severity=["critical"]), "routes[0].severity: unknown key"),
        (lambda d: d.update(routes=[]), "routes: at least one"),
        (lambda d: d.update(sinks={}), "sinks: must be an array of tables"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_key(change: Any, message: str) -> None:
    doc = config_doc()
    change(doc)
    with pytest.raises(DeliveryConfigError) as info:
        parse_config(doc, ENV)
    text = str(info.value)
    assert message in text
    assert "\n" not in text
    assert "topsecret" not in text and "XXXX" not in text


def test_load_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "deliver.toml"
    path.write_text(
        '[[sinks]]\nname = "f"\ntype = "jsonl"\npath = "a.jsonl"\n\n[[routes]]\nsinks = ["g"]\n'
    )
    with pytest.raises(
        DeliveryConfigError, match=r"deliver\.toml: routes\[0\]\.sinks: no sink named 'g'"
    ):
        load_config(path, {})
    path.write_text("sinks = [")
    with pytest.raises(DeliveryConfigError, match=r"deliver\.toml: not valid TOML"):
        load_config(path, {})
    path.write_text(
        '[[sinks]]\nname = "f"\ntype = "jsonl"\npath = "a.jsonl"\n\n[[routes]]\nsinks = ["f"]\n'
    )
    assert load_config(path, {}).sinks_for(ALERT) == ("f",)


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = orjson.dumps(ALERT)
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert sign(b"k", body) == f"sha256={expected}"
    headers = webhook_headers(ALERT, body, b"k")
    assert headers[SIGNATURE_HEADER] == f"sha256={expected}"
    assert headers[IDEMPOTENCY_HEADER] == ALERT["alert_id"]
    assert SIGNATURE_HEADER not in webhook_headers(ALERT, body, None)


def test_retry_policy_backs_off_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(backoff_s=0.5, backoff_max_s=3.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize(
    ("status", "again"),
    [
        (500, True),
        (503, True),
        (429, True),
        (408, True),
        (400, False),
        (401, False),
        (404, False),
        (302, False),
    ],
)
def test_retryable_statuses(status: int, again: bool) -> None:
    assert retryable(status) is again


def test_slack_text_names_customer_risk_drivers_action_escaped() -> None:
    text = slack_text(
        {
            **ALERT,
            "probability": 0.37,
            "horizon_days": 14,
            "revenue_at_risk": 18.5,
            "percentile": 97.5,
        }
    )
    assert "customer `u&lt;1&gt;` (saas)" in text
    assert "risk 0.82 (threshold 0.50)" in text
    assert "critical" in text
    assert "watch time down 70% vs usual" in text
    assert "within 14 days: 37%" in text
    assert "Revenue at risk: 18.50" in text
    assert "Percentile among today's scores of the segment: 97.5" in text
    assert (
        "Suggested action (integration support): Call about the failing sync &amp; fix it." in text
    )
    assert orjson.loads(slack_body(ALERT)) == {"text": slack_text(ALERT)}


def test_slack_text_of_roi_drop_and_of_a_sparse_alert() -> None:
    text = slack_text({"kind": "roi_drop", "severity": "warning", "value": 0.6, "threshold": 1.0})
    assert "ROI drop (warning)" in text and "ROI 7d 0.60 (threshold 1.00)" in text
    assert "Why" not in text and "Suggested" not in text


def test_holdout_and_jsonl_line() -> None:
    assert is_holdout({**ALERT, "holdout": True})
    assert not is_holdout(ALERT)
    assert not is_holdout({**ALERT, "holdout": "true"})
    line = jsonl_line(orjson.dumps(ALERT, option=orjson.OPT_INDENT_2))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert orjson.loads(line) == ALERT
