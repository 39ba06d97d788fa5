"""A worker against a real broker's SSL listener (issue 18): a CA and a broker certificate for
127.0.0.1 are made in the test, a private `LocalKafka` serves TLS with them, and the worker
(CHURNSTREAM_SECURITY_PROTOCOL=SSL, CHURNSTREAM_SSL_CAFILE) applies events and serves them;
its log names the security mode."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from workers import make_topics, produce, running_worker, wait_until

from churnstream.stream.devtools.kafka_local import KafkaPrerequisiteError, LocalKafka

pytestmark = pytest.mark.slow


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d: Path) -> tuple[Path, Path]:
    """(CA certificate, broker keystore PEM: private key + certificate for IP 127.0.0.1)."""
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.pem", cwd=d,
    )  # fmt: skip
    (d / "broker.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=broker",
        "-keyout", "broker.key", "-out", "broker.csr", cwd=d,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "broker.ext", "-out", "broker.pem", cwd=d,
    )  # fmt: skip
    keystore = d / "broker-keystore.pem"
    keystore.write_text((d / "broker.key").read_text() + (d / "broker.pem").read_text())
    return d / "ca.pem", keystore


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """(PLAINTEXT bootstrap for the test's own clients, SSL bootstrap, CA file)."""
    pki = tmp_path_factory.mktemp("pki")
    ca, keystore = make_pki(pki)
    kafka = LocalKafka(
        tmp_path_factory.mktemp("tls-kafka"), die_with_parent=True, ssl_keystore=keystore
    )
    try:
        plain = kafka.start()
    except KafkaPrerequisiteError as exc:
        pytest.skip(str(exc))
    try:
        assert kafka.ssl_bootstrap is not None
        yield plain, kafka.ssl_bootstrap, ca
    finally:
        kafka.stop()


def test_a_worker_runs_over_tls_with_the_test_ca(
    tls_broker: tuple[str, str, Path], fresh_topic_prefix: str, tmp_path: Path
) -> None:
    plain, tls, ca = tls_broker
    prefix = fresh_topic_prefix
    make_topics(plain, prefix)
    env = {"CHURNSTREAM_SECURITY_PROTOCOL": "SSL", "CHURNSTREAM_SSL_CAFILE": str(ca)}
    login = {"event_id": "tls-1", "user_id": "tls-user", "ts": 1767603600}
    with running_worker(tls, prefix, tmp_path, env=env) as worker:
        produce(plain, [(f"{prefix}behaviour.logins", b"tls-user", orjson.dumps(login))])
        view = wait_until(lambda: worker.user("tls-user"), 90, "the event applied over TLS")
        assert view["user_id"] == "tls-user"
    log = worker.log_path.read_text()
    assert "security: Kafka SSL, TLS;" in log
