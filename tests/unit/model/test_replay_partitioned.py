"""Users partitioned over processes (`model.partitioned`) give the results of one process.

The history has late events (applied, and too late to count), out-of-order lifecycle events,
duplicates and invalid records; the models take over from the rules early and publish many
snapshot versions, so every daily row's model version and every score is compared, and the
report is judged against the simulator's truth. One, two and three processes write the same
files, report, states and models, and so does `Replay` (one process, its own code path).
"""

from __future__ import annotations

import io
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from churnstream.agents import configure
from churnstream.model import partitioned
from churnstream.model.partitioned import PartitionedReplay
from churnstream.model.partitioned_input import owner
from churnstream.model.replay import Replay
from churnstream.model.replay_input import ReplayRecord
from churnstream.stream.cli.main import main
from churnstream.stream.devtools.simulator import SimConfig, generate, ground_truth, write_jsonl
from churnstream.stream.devtools.simulator.jsonl import replay_records
from churnstream.stream.devtools.simulator.judge import SimulatorTruth
from churnstream.stream.settings import Settings

SIM = SimConfig(users=60, days=40, seed=7, bad_fraction=0.01)
ENV = {"CHURNSTREAM_MIN_LABELS": "50", "CHURNSTREAM_SNAPSHOT_EVERY": "25"}


def disordered(records: list[ReplayRecord], seed: int = 3) -> list[ReplayRecord]:
    """The simulated history (in event-time order) with 3% of its records moved later in the
    stream by up to ~300 records (about a day: applied late) and 1% of its first quarter moved
    to the end (older than the feature window by then: too late), lifecycle events among
    them."""
    rng = random.Random(seed)
    out = list(records)
    n = len(out)
    for i in sorted(rng.sample(range(n), n * 3 // 100), reverse=True):
        out.insert(min(n, i + rng.randint(1, 300)), out.pop(i))
    ends = sorted(rng.sample(range(n // 4), n // 400), reverse=True)
    out.extend(reversed([out.pop(i) for i in ends]))
    return out


@pytest.fixture(scope="module")
def records() -> list[ReplayRecord]:
    return disordered(list(replay_records(generate(SIM))))


TRUTH = SimulatorTruth(ground_truth(SIM))


def run(records: Any, jobs: int | None, env: dict[str, str] = ENV) -> dict[str, Any]:
    """`jobs` None: `Replay` itself."""
    settings = Settings.from_env(env)
    scores_out, alerts_out = io.BytesIO(), io.BytesIO()
    outputs: dict[str, Any] = {
        "scores_out": scores_out,
        "alerts_out": alerts_out,
        "wall_clock": lambda: 0.0,
        "truth": TRUTH,
    }
    if jobs is None:
        replay = configure.replay(settings, **outputs)
    else:
        replay = PartitionedReplay(
            configure.engine_config(settings),
            configure.alert_policy(settings),
            jobs=jobs,
            max_bytes=settings.max_record_bytes,
            snapshot_every=settings.snapshot_every,
            **outputs,
        )
    report = replay.run(records)
    return {
        "report": report,
        "alerts": alerts_out.getvalue(),
        "scores": scores_out.getvalue(),
        "states": list(replay.states()),
        "models": {s: m.snapshot() for s, m in replay.trainer.models.items()},
    }


@pytest.fixture(scope="module")
def one(records: list[ReplayRecord]) -> dict[str, Any]:
    return run(records, jobs=1)


def test_the_history_exercises_what_couples_users(
    records: list[ReplayRecord], one: dict[str, Any]
) -> None:
    results = one["report"]["results"]
    assert results["late"] > 0 and results["too_late"] > 0 and results["duplicate"] > 0
    assert results["invalid"] > 0
    rows = [orjson.loads(line) for line in one["scores"].splitlines()]
    daily = [r for r in rows if r["trigger"] == "daily"]
    assert {r["source"] for r in daily} == {"model", "rules"}
    assert len({(r["segment"], r["model_version"]) for r in daily}) > 20
    alerts = [orjson.loads(line) for line in one["alerts"].splitlines()]
    kinds = Counter(a["kind"] for a in alerts)
    assert kinds["churn_risk"] > 0 and kinds["roi_drop"] > 0
    assert all("percentile" in a for a in alerts if a["kind"] == "churn_risk")
    cancels = sum(s["churners"] for s in one["report"]["segments"].values())
    assert cancels > 0
    # Users really are split: both processes of two own some.
    assert {owner(v["user_id"], 2) for v in one["states"]} == {0, 1}
    assert all("truth" in s for s in one["report"]["segments"].values())


@pytest.mark.parametrize("jobs", [None, 2, 3])
def test_n_processes_write_what_one_writes(
    records: list[ReplayRecord], one: dict[str, Any], jobs: int
) -> None:
    many = run(records, jobs=jobs)
    assert many["alerts"] == one["alerts"]
    assert many["scores"] == one["scores"]
    assert many["report"] == one["report"]
    assert many["states"] == one["states"]
    assert many["models"] == one["models"]


def test_an_experiment_that_does_not_learn_from_treated_customers(
    records: list[ReplayRecord], tmp_path: Path
) -> None:
    # Whether a label is learned reads the user's alert memory when it is released.
    path = tmp_path / "alerts.toml"
    path.write_text('[experiment]\nname = "e1"\nholdout_share = 0.3\neffect_days = 20\n')
    env = {**ENV, "CHURNSTREAM_ALERTS_CONFIG": str(path)}
    one, two = run(records, jobs=None, env=env), run(records, jobs=2, env=env)
    assert one["report"] != run(records, jobs=None)["report"]  # fewer labels learned
    for part in ("alerts", "scores", "report", "states", "models"):
        assert two[part] == one[part], part


def test_a_daily_budget_runs_in_one_process(tmp_path: Path) -> None:
    # The budget's pick compares every user's candidates of a boundary.
    path = tmp_path / "alerts.toml"
    path.write_text("[segments.saas]\ndaily_budget = 2\n")
    settings = Settings.from_env({"CHURNSTREAM_ALERTS_CONFIG": str(path)})
    replay = configure.replay(settings, by_user=True, jobs=2)
    assert type(replay) is Replay
    assert type(configure.replay(Settings.from_env({}), by_user=True, jobs=2)) is PartitionedReplay


def test_an_iterator_is_handed_to_the_processes(
    records: list[ReplayRecord], one: dict[str, Any]
) -> None:
    many = run(iter(records), jobs=2)  # not a list: read here, sent in chunks
    for part in ("alerts", "scores", "report", "states"):
        assert many[part] == one[part], part


def test_a_dead_process_fails_the_replay(
    records: list[ReplayRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    def die(self: partitioned.Part) -> None:
        os._exit(3)  # killed (out of memory, by hand) before it reported

    monkeypatch.setattr(partitioned.Part, "finish", die)
    with pytest.raises(RuntimeError, match="without a word"):
        run(records[:2000], jobs=2)


def test_a_failing_process_fails_the_replay(
    records: list[ReplayRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(self: partitioned.Part) -> None:
        if self.index == 1:
            raise ValueError("no such thing")
        original(self)

    original = partitioned.Part.finish
    monkeypatch.setattr(partitioned.Part, "finish", fail)
    with pytest.raises(RuntimeError, match="no such thing"):
        run(records[:2000], jobs=2)


def test_an_input_that_breaks_off_fails_the_replay(records: list[ReplayRecord]) -> None:
    def broken() -> Any:
        yield from records[:3000]
        raise OSError("the file went away")

    with pytest.raises(OSError, match="went away"):
        run(broken(), jobs=2)


def test_cli_by_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "sim.jsonl"
    write_jsonl(generate(SimConfig(users=20, days=20, seed=2)), path)
    monkeypatch.setenv("CHURNSTREAM_MIN_LABELS", "20")
    out = {}
    for name, extra in (("one", ["--jobs", "1"]), ("users", ["--jobs", "2", "--by-user"])):
        files = {f: tmp_path / f"{f}-{name}.json" for f in ("scores", "alerts", "state", "report")}
        argv = ["replay", str(path), *extra]
        for option, file in files.items():
            argv += [f"--{option}", str(file)]
        assert main(argv) == 0
        rows = [orjson.loads(line) for line in files["scores"].read_bytes().splitlines()]
        out[name] = (
            [{k: v for k, v in r.items() if k != "scored_at"} for r in rows],
            *(files[f].read_bytes() for f in ("alerts", "state", "report")),
        )
    assert out["users"] == out["one"]
    assert out["one"][0] and out["one"][1]  # scores and alerts were written
