"""Security settings -> aiokafka/Faust options, secrets kept out of repr, logs and errors."""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from churnstream.stream.contract.pseudonym import pseudonym
from churnstream.stream.kafka.client import broker_credentials, client_options, security_settings
from churnstream.stream.kafka.security import ENV_VARS, SecurityError, SecuritySettings
from churnstream.stream.settings import Settings

PASSWORD = "pw-Zq81-never-log-me"
KEY = "k-0123456789abcdef-secret-key"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)


def sasl_env(**more: str) -> dict[str, str]:
    return {
        "CHURNSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "CHURNSTREAM_SASL_MECHANISM": "SCRAM-SHA-256",
        "CHURNSTREAM_SASL_USERNAME": "alice",
        "CHURNSTREAM_SASL_PASSWORD": PASSWORD,
        **more,
    }


def test_plaintext_default_keeps_aiokafka_defaults() -> None:
    assert client_options(Settings()) == {}
    assert broker_credentials(Settings()) is None


def test_sasl_scram_options() -> None:
    options = SecuritySettings.from_env(sasl_env()).aiokafka_options()
    assert options == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "alice",
        "sasl_plain_password": PASSWORD,
    }


def test_client_options_follow_the_settings_environment() -> None:
    # Settings.from_env keeps unknown CHURNSTREAM_* variables in `extra`: the seam reads them.
    settings = Settings.from_env(sasl_env())
    assert client_options(settings)["sasl_mechanism"] == "SCRAM-SHA-256"


def test_password_from_file_strips_the_newline(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    env = sasl_env(CHURNSTREAM_SASL_PASSWORD_FILE=str(secret))
    del env["CHURNSTREAM_SASL_PASSWORD"]
    assert SecuritySettings.from_env(env).aiokafka_options()["sasl_plain_password"] == PASSWORD


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"CHURNSTREAM_SECURITY_PROTOCOL": "SASL_TLS"}, "SECURITY_PROTOCOL"),
        ({"CHURNSTREAM_SASL_MECHANISM": "GSSAPI"}, "SASL_MECHANISM"),
        ({"CHURNSTREAM_SASL_USERNAME": ""}, "SASL_USERNAME"),
        ({"CHURNSTREAM_SASL_PASSWORD": ""}, "SASL_PASSWORD"),
        ({"CHURNSTREAM_SASL_PASSWORD_FILE": "/nonexistent/pw"}, "SASL_PASSWORD"),
        ({"CHURNSTREAM_SSL_CAFILE": "/nonexistent/ca.pem"}, "SSL_CAFILE"),
        ({"CHURNSTREAM_SSL_CHECK_HOSTNAME": "maybe"}, "SSL_CHECK_HOSTNAME"),
        ({"CHURNSTREAM_PSEUDONYM_KEY": "short"}, "PSEUDONYM_KEY"),
    ],
)
def test_bad_settings_name_the_variable_and_hide_secrets(
    change: dict[str, str], message: str
) -> None:
    with pytest.raises(SecurityError) as info:
        settings = SecuritySettings.from_env(sasl_env(**change))
        settings.pseudonymizer()
    assert message in str(info.value)
    assert PASSWORD not in str(info.value)
    assert "short" not in str(info.value).split(":", 1)[1]  # the too-short key is not echoed


def test_secrets_never_in_repr_str_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = SecuritySettings.from_env(sasl_env(CHURNSTREAM_PSEUDONYM_KEY=KEY))
    log = logging.getLogger("test")
    log.debug("settings %s %r %s", settings, settings, settings.describe())
    log.debug("credentials %r", broker_credentials(Settings.from_env(sasl_env())))
    shown = " ".join(
        [
            repr(settings),
            str(settings),
            settings.describe(),
            repr(settings.pseudonymizer()),
            caplog.text,
        ]
    )
    assert "alice" in shown  # the user name is not a secret; proves the text was captured
    assert PASSWORD not in shown
    assert KEY not in shown
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(settings.sasl_password)


def test_faust_credentials_match_the_aiokafka_options() -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    settings = Settings.from_env(sasl_env(CHURNSTREAM_SASL_MECHANISM="SCRAM-SHA-512"))
    via_faust = credentials_to_aiokafka_auth(broker_credentials(settings))
    ours = client_options(settings)
    assert {k: via_faust[k] for k in ours} == ours
    assert via_faust["ssl_context"] is None


def test_aiokafka_accepts_every_protocol(tls: dict[str, Path]) -> None:
    from aiokafka import AIOKafkaProducer

    async def build(env: dict[str, str]) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers="127.0.0.1:1", **SecuritySettings.from_env(env).aiokafka_options()
        )
        await producer.stop()

    ca = {"CHURNSTREAM_SSL_CAFILE": str(tls["ca"])}
    for protocol in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        asyncio.run(build(sasl_env(CHURNSTREAM_SECURITY_PROTOCOL=protocol, **ca)))


def test_blocked_users_are_compared_as_pseudonyms(tmp_path: Path) -> None:
    path = tmp_path / "blocked.txt"
    already = pseudonym("carol", KEY.encode())
    path.write_text(f"# erased on request\nalice\n  bob  # ticket 42\n\n{already}\n")
    plain = SecuritySettings(blocked_users_file=str(path)).blocked_users()
    assert plain == {"alice", "bob", already}
    env = {"CHURNSTREAM_BLOCKED_USERS_FILE": str(path), "CHURNSTREAM_PSEUDONYM_KEY": KEY}
    hashed = SecuritySettings.from_env(env).blocked_users()
    assert hashed == {pseudonym(u, KEY.encode()) for u in ("alice", "bob", "carol")}


def test_security_settings_of_settings_see_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var, value in sasl_env().items():
        monkeypatch.setenv(var, value)
    assert security_settings(Settings()).sasl_username == "alice"


# -- TLS: a CA, a server certificate for 127.0.0.1 and a client certificate, made by openssl --


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_ca(d: Path, name: str) -> None:
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.pem",
        cwd=d,
    )


def _make_leaf(d: Path, ca: str, name: str, san: str) -> None:
    (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        f"/CN={name}",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        cwd=d,
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        f"{ca}.pem",
        "-CAkey",
        f"{ca}.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        f"{name}.ext",
        "-out",
        f"{name}.pem",
        cwd=d,
    )


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("tls")
    _make_ca(d, "ca")
    _make_ca(d, "other-ca")
    _make_leaf(d, "ca", "server", "IP:127.0.0.1")
    _make_leaf(d, "ca", "client", "DNS:client")
    return {name: d / f"{name}.pem" for name in ("ca", "other-ca", "server", "client")} | {
        "server-key": d / "server.key",
        "client-key": d / "client.key",
    }


def _handshake(client_ctx: ssl.SSLContext, tls: dict[str, Path]) -> str | None:
    """TLS handshake against a loopback server with mutual TLS; returns the peer's cert CN."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls["ca"]))
    server_ctx.load_cert_chain(tls["server"], tls["server-key"])
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    seen: list[str] = []

    async def run() -> None:
        served = asyncio.Event()

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peercert") or {}
            seen.extend(v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName")
            writer.close()
            served.set()

        server = await asyncio.start_server(on_client, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    "127.0.0.1", port, ssl=client_ctx, server_hostname="127.0.0.1"
                ),
                10,
            )
            await asyncio.wait_for(served.wait(), 10)
            writer.close()
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(run())
    return seen[0] if seen else None


def test_ssl_context_trusts_the_configured_ca_and_presents_the_client_cert(
    tls: dict[str, Path],
) -> None:
    settings = SecuritySettings.from_env(
        {
            "CHURNSTREAM_SECURITY_PROTOCOL": "SSL",
            "CHURNSTREAM_SSL_CAFILE": str(tls["ca"]),
            "CHURNSTREAM_SSL_CERTFILE": str(tls["client"]),
            "CHURNSTREAM_SSL_KEYFILE": str(tls["client-key"]),
        }
    )
    ctx = settings.aiokafka_options()["ssl_context"]
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    assert _handshake(ctx, tls) == "client"


def test_ssl_context_rejects_a_server_of_another_ca(tls: dict[str, Path]) -> None:
    settings = SecuritySettings(security_protocol="SSL", ssl_cafile=str(tls["other-ca"]))
    ctx = settings.ssl_context()
    assert ctx is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(ctx, tls)


def test_unloadable_client_key_is_a_clear_error(tls: dict[str, Path]) -> None:
    settings = SecuritySettings(
        security_protocol="SASL_SSL",
        sasl_username="a",
        ssl_cafile=str(tls["ca"]),
        ssl_certfile=str(tls["client"]),
        ssl_keyfile=str(tls["server-key"]),
    )
    with pytest.raises(SecurityError, match="SSL_CERTFILE/SSL_KEYFILE"):
        settings.ssl_context()


# -- the local broker's optional SCRAM listener ------------------------------------------------


def test_local_broker_scram_listener_is_opt_in() -> None:
    from churnstream.stream.devtools.kafka_local import render_server_properties

    plain = render_server_properties(9092, 9093, Path("/data"))
    assert "SASL" not in plain and "listeners=PLAINTEXT://127.0.0.1:9092\n" in plain
    scram = render_server_properties(9092, 9093, Path("/data"), sasl_port=9094)
    assert "listeners=PLAINTEXT://127.0.0.1:9092,SASL_PLAINTEXT://127.0.0.1:9094," in scram
    assert "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512\n" in scram
    assert "inter.broker.listener.name=PLAINTEXT\n" in scram


def test_scram_format_args_refuse_what_the_tool_cannot_parse() -> None:
    from churnstream.stream.devtools.kafka_local import scram_format_args

    assert scram_format_args({"svc": "pw"}) == [
        "--add-scram",
        "SCRAM-SHA-256=[name=svc,password=pw]",
        "--add-scram",
        "SCRAM-SHA-512=[name=svc,password=pw]",
    ]
    with pytest.raises(ValueError) as info:
        scram_format_args({"svc": "p,w"})
    assert "p,w" not in str(info.value)


def test_model_signing_key_from_the_variable_or_a_file_never_shown(tmp_path: Path) -> None:
    assert SecuritySettings.from_env({}).snapshot_key() is None
    secret = "snapshot-key-0123456789"
    direct = SecuritySettings.from_env({"CHURNSTREAM_MODEL_SIGNING_KEY": secret})
    assert direct.snapshot_key() == secret.encode() and secret not in repr(direct)
    path = tmp_path / "key"
    path.write_text(secret + "\n", encoding="utf-8")
    from_file = SecuritySettings.from_env({"CHURNSTREAM_MODEL_SIGNING_KEY_FILE": str(path)})
    assert from_file.snapshot_key() == secret.encode()
    with pytest.raises(SecurityError, match="MODEL_SIGNING_KEY: at least 16") as info:
        SecuritySettings.from_env({"CHURNSTREAM_MODEL_SIGNING_KEY": "short-key"})
    assert "short-key" not in str(info.value)
    # A known variable: the worker does not warn that it is ignored.
    env = {"CHURNSTREAM_MODEL_SIGNING_KEY": secret}
    assert direct.warnings(env, frozenset()) == []
