"""Who may read the worker's web server: a bearer token, required beyond loopback.

The read API (`/users/{id}/`, `/status/`) serves personal data, so a web server bound to an
address other hosts reach must require `Authorization: Bearer <CHURNSTREAM_WEB_TOKEN>`; the
worker refuses to start without a token there. A request routed to the user's owner keeps its
headers (Faust's router forwards them), so the owner checks the same token. Faust's own views
that are not churnstream's (`/table/...` with raw records, `/router/`) are switched off in
agents/app.py.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from churnstream.stream.kafka.client import security_settings
from churnstream.stream.settings import Settings, SettingsError

Handler = Callable[..., Awaitable[Any]]


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (only this host can connect there)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to, others may reach it


def web_token(settings: Settings) -> str | None:
    """The bearer token the read API requires (None: none), or SettingsError when the web
    server binds beyond loopback without one."""
    token = security_settings(settings).web_token.reveal()
    if not token and not is_loopback(settings.web_host):
        raise SettingsError(
            f"CHURNSTREAM_WEB_HOST={settings.web_host!r}: the read API serves personal data; "
            "beyond loopback set CHURNSTREAM_WEB_TOKEN (or _FILE) to a bearer token"
        )
    return token or None


def authorized(token: str | None) -> Callable[[Handler], Handler]:
    """Decorate a view method: without `token` it runs as is; with one, a request that does
    not carry `Authorization: Bearer <token>` gets 401 and never reaches it (nor is routed)."""
    expected = f"Bearer {token}".encode() if token else None

    def decorate(handler: Handler) -> Handler:
        if expected is None:
            return handler

        @wraps(handler)
        async def checked(view: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return view.json(
                    {"error": "unauthorized"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="churnstream"'},
                )
            return await handler(view, request, *args, **kwargs)

        return checked

    return decorate
