"""Options shared by every Kafka client churnstream makes (Faust app, CLI tools, benchmarks).

One place so that connection and security settings are applied consistently: every aiokafka
client passes `**client_options(settings)`, the Faust app passes `broker_credentials(settings)`.
"""

from __future__ import annotations

import os
from typing import Any

from churnstream.stream.kafka.security import SecuritySettings
from churnstream.stream.settings import Settings


def security_settings(settings: Settings) -> SecuritySettings:
    """The security settings that belong with `settings`.

    Read from the process environment, overlaid with the `CHURNSTREAM_*` variables that
    `Settings.from_env` kept in `settings.extra` (so a Settings built from an explicit env
    mapping carries its own security settings too).
    """
    return SecuritySettings.from_env({**os.environ, **settings.extra})


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka clients (producer, consumer, admin): `{}` for PLAINTEXT."""
    return security_settings(settings).aiokafka_options()


def broker_credentials(settings: Settings) -> Any:
    """`broker_credentials` for `faust.App` (None for PLAINTEXT)."""
    return security_settings(settings).faust_credentials()
