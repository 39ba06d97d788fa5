"""`churnstream replay --html` opened by a real browser: Debian's headless Chromium, offline.

The report of a simulated history is loaded from a file with every host name unresolvable (a
request to the network would fail); the DOM Chromium built must hold every chart with its drawn
series, and a screenshot of the page is taken. `backfill --html` writes the same report of the
history it hands to the live system (real broker).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from workers import make_topics

from churnstream.stream.cli.main import main
from churnstream.stream.devtools.simulator import SimConfig, generate, write_jsonl

SIM = SimConfig(users=80, days=40, seed=3)
ENV = {"CHURNSTREAM_MIN_LABELS": "50", "CHURNSTREAM_SNAPSHOT_EVERY": "50"}
CHARTS = {
    "calibration",
    "gain",
    "scores-course",
    "scores-saas",
    "scores-docs",
    "lead-time",
    "alerts-per-day",
}


def _chromium() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("CHROMIUM UNAVAILABLE: not installed, and no apt-get as root to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    found = shutil.which("chromium")
    assert found, "chromium missing after apt-get install chromium"
    return found


def _browse(chromium: str, page: Path, *args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # root in a container
            "--disable-gpu",
            "--host-resolver-rules=MAP * ~NOTFOUND",  # offline: no host resolves
            f"--user-data-dir={home / 'profile'}",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(home)},
    )


def _run(args: list[str], env: dict[str, str]) -> None:
    with pytest.MonkeyPatch.context() as mp:
        for k in [k for k in os.environ if k.startswith("CHURNSTREAM_")]:
            mp.delenv(k)
        for k, v in {**ENV, **env}.items():
            mp.setenv(k, v)
        assert main(args) == 0


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("history") / "history.jsonl"
    write_jsonl(generate(SIM), path)
    return path


@pytest.fixture(scope="module")
def report(history: Path) -> Path:
    out = history.parent / "report.html"
    _run(["replay", str(history), "--html", str(out)], {})
    return out


def test_chromium_renders_every_chart(report: Path, tmp_path: Path) -> None:
    done = _browse(_chromium(), report, "--dump-dom", home=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    charts = dict(re.findall(r'<svg class="chart" data-chart="([\w-]+)"(.*?)</svg>', dom, re.S))
    assert set(charts) == CHARTS
    for name in ("calibration", "gain"):
        assert charts[name].count('class="series"') == 3, name  # one line per segment
    for segment in ("course", "saas", "docs"):
        assert charts[f"scores-{segment}"].count('class="series"') == 2  # churned, stayed
    assert charts["lead-time"].count('class="bar"') > 0
    assert charts["alerts-per-day"].count('class="bar"') > 0


def test_chromium_screenshot_of_the_report(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    done = _browse(
        _chromium(), report, f"--screenshot={shot}", "--window-size=1000,2800", home=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1000, 2800)
    # A page of charts compresses far less than a blank one (a blank 1000x2800 page: 14 KB).
    assert len(data) > 60_000, len(data)


@pytest.mark.kafka
def test_backfill_writes_the_same_report(
    history: Path, report: Path, kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    make_topics(kafka_bootstrap, fresh_topic_prefix)
    out = tmp_path / "backfill.html"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CHURNSTREAM_TOPIC_PREFIX": fresh_topic_prefix,
        "CHURNSTREAM_APP_ID": fresh_topic_prefix.strip("."),
    }
    _run(["backfill", str(history), "--html", str(out)], env)
    # The same history through the same code: the same charts, only the title differs.
    assert out.read_text().replace("backfill of", "replay of") == report.read_text()
