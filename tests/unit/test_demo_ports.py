"""The demo's worker serves metrics on the configured port (the one prometheus.yml scrapes)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from churnstream.stream.cli.commands.demo import _port_or_free
from churnstream.stream.devtools.kafka_local import free_port
from churnstream.stream.settings import Settings

PROMETHEUS_YML = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "prometheus.yml"


def test_default_metrics_port_is_scraped_by_the_shipped_prometheus_config() -> None:
    targets = re.findall(r"^\s*- (127\.0\.0\.1:\d+)$", PROMETHEUS_YML.read_text(), re.M)
    assert f"127.0.0.1:{Settings().metrics_port}" in targets


def test_a_free_configured_port_is_kept() -> None:
    port = free_port()
    assert _port_or_free(port) == port


def test_a_taken_port_falls_back_to_a_free_one() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = _port_or_free(port)
        assert other != port and other > 0


def test_port_zero_picks_a_free_one() -> None:
    assert _port_or_free(0) > 0
