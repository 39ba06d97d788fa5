"""Options shared by every Kafka client churnstream makes (Faust app, CLI tools, benchmarks).

One place so that connection and security settings are applied consistently.
"""

from __future__ import annotations

from typing import Any

from stream.settings import Settings


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka clients (producer, consumer, admin)."""
    del settings  # connection security is added here, for every client at once
    return {}
