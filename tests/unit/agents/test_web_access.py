"""Read API access: a bearer token (required beyond loopback), bind vs advertised address, and
Faust's own `/table/` and `/router/` views switched off."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from churnstream.agents.web_access import authorized, is_loopback, web_token
from churnstream.stream.kafka.security import ENV_VARS, SecurityError
from churnstream.stream.settings import Settings, SettingsError

TOKEN = "t0ken-under-test-0123456789"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)


def test_loopback_addresses() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "10.0.0.5", "worker-1.internal", "::"]))


def test_a_token_is_required_beyond_loopback() -> None:
    assert web_token(Settings()) is None
    with pytest.raises(SettingsError, match="CHURNSTREAM_WEB_TOKEN"):
        web_token(Settings(web_host="10.0.0.5"))
    wide = Settings(web_host="10.0.0.5", extra={"CHURNSTREAM_WEB_TOKEN": TOKEN})
    assert web_token(wide) == TOKEN
    with pytest.raises(SecurityError, match="at least 16"):
        web_token(Settings(extra={"CHURNSTREAM_WEB_TOKEN": "short"}))


def test_a_wildcard_bind_address_needs_an_advertised_one() -> None:
    with pytest.raises(SettingsError, match="CHURNSTREAM_WEB_ADVERTISED_HOST"):
        Settings.from_env({"CHURNSTREAM_WEB_HOST": "0.0.0.0"})
    with pytest.raises(SettingsError, match="not a wildcard"):
        Settings.from_env({"CHURNSTREAM_WEB_ADVERTISED_HOST": "0.0.0.0"})
    ok = Settings.from_env(
        {"CHURNSTREAM_WEB_HOST": "0.0.0.0", "CHURNSTREAM_WEB_ADVERTISED_HOST": "10.0.0.5"}
    )
    assert ok.web_advertised_host == "10.0.0.5"


class FakeView:
    def json(self, value: Any, *, status: int = 200, headers: Any = None) -> Any:
        return (status, value, headers)


def call(token: str | None, header: str | None) -> Any:
    async def handler(view: Any, request: Any) -> Any:
        return (200, "the user", None)

    request = SimpleNamespace(headers={"Authorization": header} if header else {})
    return asyncio.run(authorized(token)(handler)(FakeView(), request))


def test_the_token_guards_the_view() -> None:
    assert call(None, None)[0] == 200
    assert call(TOKEN, f"Bearer {TOKEN}") == (200, "the user", None)
    for header in (None, "Bearer wrong-token-0123456789", TOKEN, f"Basic {TOKEN}"):
        status, body, headers = call(TOKEN, header)
        assert (status, body) == (401, {"error": "unauthorized"})
        assert headers["WWW-Authenticate"].startswith("Bearer")


def test_the_app_binds_and_advertises_apart_and_serves_no_faust_views(tmp_path: Path) -> None:
    from churnstream.agents.app import create_app

    settings = Settings(
        web_host="0.0.0.0",  # the bind address under test, never bound here
        web_advertised_host="10.0.0.5",
        web_port=6070,
        data_dir=tmp_path,
        extra={"CHURNSTREAM_WEB_TOKEN": TOKEN},
    )
    conf = create_app(settings, bootstrap="127.0.0.1:9").conf
    assert (conf.web_bind, conf.web_host) == ("0.0.0.0", "10.0.0.5")
    assert str(conf.canonical_url) == "http://10.0.0.5:6070"
    assert not conf.web_router_enabled and not conf.web_tables_enabled
    with pytest.raises(SettingsError, match="CHURNSTREAM_WEB_TOKEN"):
        create_app(settings.replace(extra={}), bootstrap="127.0.0.1:9")
