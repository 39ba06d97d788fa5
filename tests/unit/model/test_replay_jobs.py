"""`replay --jobs N` and event scores worked out later: the same output as one process.

Event scores are handed out unscored (`EventScore`) unless a replay writes them itself; they are
worked out by other processes (`jobs` > 1), or not at all without a scores file (only each
user's newest, for its stored last score). Every output must be byte for byte the one of a
replay that scores each event when it arrives.
"""

from __future__ import annotations

import io
import os
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import orjson
import pytest

from churnstream.agents import configure
from churnstream.model import score_pool
from churnstream.model.replay_input import ReplayRecord
from churnstream.stream.cli.main import main
from churnstream.stream.devtools.simulator import SimConfig, generate, write_jsonl
from churnstream.stream.devtools.simulator.jsonl import replay_records
from churnstream.stream.settings import Settings

# Small, and with the models taking over from the rules after some 50 labels: the pool scores
# with many snapshot versions of every segment.
SIM = SimConfig(users=60, days=40, seed=7, bad_fraction=0.01)
ENV = {"CHURNSTREAM_MIN_LABELS": "50", "CHURNSTREAM_SNAPSHOT_EVERY": "25"}


@pytest.fixture(scope="module")
def records() -> list[ReplayRecord]:
    return list(replay_records(generate(SIM)))


def run(records: list[ReplayRecord], *, jobs: int, scores: bool) -> dict[str, Any]:
    scores_out, alerts_out = (io.BytesIO() if scores else None), io.BytesIO()
    replay = configure.replay(
        Settings.from_env(ENV),
        scores_out=scores_out,
        alerts_out=alerts_out,
        wall_clock=lambda: 0.0,
        jobs=jobs,
    )
    report = replay.run(records)
    return {
        "report": report,
        "alerts": alerts_out.getvalue(),
        "scores": None if scores_out is None else scores_out.getvalue(),
        "states": sorted(replay.states(), key=lambda v: v["user_id"]),
    }


@pytest.fixture(scope="module")
def one_process(records: list[ReplayRecord]) -> dict[str, Any]:
    return run(records, jobs=1, scores=True)


def test_two_jobs_write_the_scores_of_one(
    records: list[ReplayRecord], one_process: dict[str, Any]
) -> None:
    two = run(records, jobs=2, scores=True)
    lines = one_process["scores"].splitlines()
    sources = {orjson.loads(line)["source"] for line in lines}
    assert sources == {"model", "rules"}  # the pool scored with models, not only the rules
    assert two["scores"].splitlines() == lines
    for part in ("report", "alerts", "states"):
        assert two[part] == one_process[part], part


def test_without_a_scores_file_the_rest_is_the_same(
    records: list[ReplayRecord], one_process: dict[str, Any]
) -> None:
    # Event scores are not worked out then, except each user's newest (its last score).
    alone = run(records, jobs=1, scores=False)
    for part in ("report", "alerts", "states"):
        assert alone[part] == one_process[part], part
    assert any(view["last_score"]["drivers"] for view in alone["states"] if view["last_score"])


def test_cli_jobs_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "sim.jsonl"
    write_jsonl(generate(SimConfig(users=20, days=20, seed=2)), path)
    monkeypatch.setenv("CHURNSTREAM_MIN_LABELS", "20")
    out = {}
    for jobs in ("1", "2"):
        scores, state = tmp_path / f"scores{jobs}.jsonl", tmp_path / f"state{jobs}.jsonl"
        argv = ["replay", str(path), "--jobs", jobs, "--scores", str(scores), "--state", str(state)]
        assert main(argv) == 0
        rows = [orjson.loads(line) for line in scores.read_bytes().splitlines()]
        out[jobs] = ([{k: v for k, v in r.items() if k != "scored_at"} for r in rows], state)
    assert out["1"][0] == out["2"][0]
    assert out["1"][1].read_bytes() == out["2"][1].read_bytes()
    with pytest.raises(SystemExit):
        main(["replay", str(path), "--jobs", "0"])


def _die(task: object) -> None:
    os._exit(3)  # a worker killed (out of memory, by hand) while it holds records


def test_a_dead_worker_fails_the_replay(
    records: list[ReplayRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    # multiprocessing.Pool would wait forever for the records the dead worker held.
    monkeypatch.setattr(score_pool, "_work", _die)
    with pytest.raises(BrokenProcessPool):
        run(records, jobs=2, scores=True)
