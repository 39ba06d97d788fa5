"""README "Start from your history": its commands parse, and its export example runs as written.

The section's Python block (export.py) runs on a small simulated `sim.jsonl`; its `python`
lines and `churnstream replay` commands run as given (plus `--report`), and the CSV and Parquet
exports replay to the same report as the JSON lines they came from. Every `churnstream` command
of the section is parsed by the real command line (the Kafka ones run against a broker in
tests/integration/test_backfill_topics.py and test_backfill.py).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from churnstream.stream.cli.main import build_parser, main
from churnstream.stream.devtools.simulator import SimConfig, generate, write_jsonl

ROOT = Path(__file__).resolve().parents[2]


def section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Start from your history\n")
    return text[start : text.index("\n## ", start + 1)]


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section(), re.S)


def commands() -> list[list[str]]:
    """Each command line of the bash blocks, continuation lines joined, comments and `&` cut."""
    out = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and words[-1] == "&":
                words.pop()
            if words:
                out.append(words)
    return out


def test_every_churnstream_command_of_the_section_parses() -> None:
    parser = build_parser()
    found = [words for words in commands() if words[0] == "churnstream"]
    assert {w[1] for w in found} >= {"topics", "simulate", "backfill", "worker", "replay", "tail"}
    assert found[2][:3] == ["churnstream", "backfill", "--from-topics"], found[2]
    for words in found:
        parser.parse_args(words[1:])  # exits (fails the test) on an unknown option


def test_the_export_example_replays_like_the_history_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pyarrow")
    monkeypatch.chdir(tmp_path)
    write_jsonl(generate(SimConfig(users=30, days=20, seed=3)), tmp_path / "sim.jsonl")
    (export,) = blocks("python")
    (tmp_path / "export.py").write_text(export)
    reports = {}
    for words in commands():
        if words[0] == "python":
            subprocess.run([sys.executable, *words[1:]], check=True, timeout=120)
        elif words[:2] == ["churnstream", "replay"]:
            out = tmp_path / f"{words[2]}.report.json"
            assert main([*words[1:], "--report", str(out)]) == 0
            reports[words[2]] = orjson.loads(out.read_bytes())
    assert set(reports) == {"events.csv", "events.parquet"}
    assert main(["replay", "sim.jsonl", "--report", "sim.report.json"]) == 0
    want = orjson.loads((tmp_path / "sim.report.json").read_bytes())
    assert want["results"]["ok"] > 1000
    assert reports["events.csv"] == want
    assert reports["events.parquet"] == want
