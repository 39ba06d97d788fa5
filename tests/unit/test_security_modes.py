"""Settings that would silently weaken security are refused or warned about, and the worker
logs the security mode in effect without a secret (issue 18)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from churnstream.stream.cli.commands.worker import log_security
from churnstream.stream.kafka.security import ENV_VARS, SecurityError, SecuritySettings
from churnstream.stream.settings import Settings

SECRET = "pa55word-never-shown-0123"
KNOWN = frozenset({"CHURNSTREAM_LOG_LEVEL", "CHURNSTREAM_WEB_HOST"})


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)


def test_plain_over_sasl_plaintext_is_refused() -> None:
    env = {
        "CHURNSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "CHURNSTREAM_SASL_MECHANISM": "PLAIN",
        "CHURNSTREAM_SASL_USERNAME": "u",
        "CHURNSTREAM_SASL_PASSWORD": SECRET,
    }
    with pytest.raises(SecurityError, match="in clear") as caught:
        SecuritySettings.from_env(env)
    assert SECRET not in str(caught.value)
    ssl = {**env, "CHURNSTREAM_SECURITY_PROTOCOL": "SASL_SSL"}
    assert SecuritySettings.from_env(ssl).sasl_mechanism == "PLAIN"


def test_no_hostname_check_only_with_a_private_ca(tmp_path: Path) -> None:
    env = {"CHURNSTREAM_SECURITY_PROTOCOL": "SSL", "CHURNSTREAM_SSL_CHECK_HOSTNAME": "false"}
    with pytest.raises(SecurityError, match="SSL_CHECK_HOSTNAME"):
        SecuritySettings.from_env(env)
    ca = tmp_path / "ca.pem"
    ca.write_text("not read here")
    private = SecuritySettings.from_env({**env, "CHURNSTREAM_SSL_CAFILE": str(ca)})
    assert not private.ssl_check_hostname


def test_ignored_and_misspelled_variables_are_named() -> None:
    env = {
        "CHURNSTREAM_SASL_USERNAME": "u",
        "CHURNSTREAM_SSL_CAFILE": "/nowhere.pem",
        "CHURNSTREAM_PSEUDONYM_KYE": SECRET,
        "CHURNSTREAM_LOG_LEVEL": "info",
        "CHURNSTREAM_KAFKA_HOME": "/tmp/k",
        "OTHER": "x",
    }
    lines = SecuritySettings().warnings(env, KNOWN)
    assert lines == [
        "CHURNSTREAM_SASL_USERNAME is set but ignored: "
        "CHURNSTREAM_SECURITY_PROTOCOL=PLAINTEXT does not use it",
        "CHURNSTREAM_SSL_CAFILE is set but ignored: "
        "CHURNSTREAM_SECURITY_PROTOCOL=PLAINTEXT does not use it",
        "CHURNSTREAM_PSEUDONYM_KYE is not a churnstream setting and is ignored; "
        "did you mean CHURNSTREAM_PSEUDONYM_KEY?",
    ]
    assert not any(SECRET in line for line in lines)


def test_the_worker_logs_its_security_mode_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = "k3y-never-shown-in-logs-0123456789"
    settings = Settings(extra={"CHURNSTREAM_PSEUDONYM_KEY": key, "CHURNSTREAM_WEB_TOKN": "x"})
    from churnstream.stream.kafka.client import security_settings

    security = security_settings(settings)
    with caplog.at_level(logging.INFO):
        log_security(settings, security, security.pseudonymizer().fingerprint)
    text = caplog.text
    assert "security: Kafka PLAINTEXT; pseudonymisation on (key fingerprint hmac-sha256:" in text
    assert "read API bound to 127.0.0.1:6066, advertised as 127.0.0.1, no token" in text
    assert "model snapshots not signed (no signing key)" in text
    assert "CHURNSTREAM_WEB_TOKN is not a churnstream setting" in text
    assert "did you mean CHURNSTREAM_WEB_TOKEN?" in text
    assert key not in text
