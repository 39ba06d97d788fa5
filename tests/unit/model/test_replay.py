"""Offline replay: report fields, counts, output files, plain contract events, determinism."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from churnstream.agents.configure import alert_policy, engine_config
from churnstream.model.replay import Replay, summarize
from churnstream.model.replay_input import read_records
from churnstream.stream.cli.main import main
from churnstream.stream.devtools.simulator import SimConfig, generate, ground_truth, write_jsonl
from churnstream.stream.settings import Settings

# Small enough for ~2 s per replay, large enough for the model to take over from the rules.
SIM = SimConfig(users=80, days=40, seed=3, bad_fraction=0.01)
ENV = {"CHURNSTREAM_MIN_LABELS": "50", "CHURNSTREAM_SNAPSHOT_EVERY": "50"}

SEGMENT_FIELDS = {
    "scores", "labels", "prequential_auc", "prequential_pr_auc", "prequential_log_loss",
    "published_auc", "published_pr_auc", "published_log_loss", "rules_auc", "threshold",
    "precision_at_threshold", "recall_at_threshold", "mean_score", "positive_rate", "alerts",
    "churners", "churners_alerted_before_cancel", "alert_recall", "alerted_users",
    "alert_precision", "median_lead_days", "model_version", "model_ready",
}  # fmt: skip


@pytest.fixture(scope="module")
def sim_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "sim.jsonl"
    write_jsonl(generate(SIM), path)
    return path


def run_replay(path: Path) -> tuple[Replay, dict[str, Any], list[dict[str, Any]]]:
    settings = Settings.from_env(ENV)
    out = io.BytesIO()
    replay = Replay(
        engine_config(settings),
        alert_policy(settings),
        snapshot_every=settings.snapshot_every,
        scores_out=out,
    )
    report = replay.run(read_records(path))
    scores = [orjson.loads(line) for line in out.getvalue().splitlines()]
    return replay, report, scores


@pytest.fixture(scope="module")
def replayed(sim_file: Path) -> tuple[Replay, dict[str, Any], list[dict[str, Any]]]:
    return run_replay(sim_file)


def without_wall_clock(scores: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in s.items() if k != "scored_at"} for s in scores]


def test_report_has_every_field(replayed: tuple[Replay, dict[str, Any], Any]) -> None:
    _, report, _ = replayed
    assert set(report) == {"events", "results", "invalid_by_error", "users", "segments"}
    assert set(report["segments"]) == {"course", "saas", "docs"}
    for name, seg in report["segments"].items():
        assert set(seg) == SEGMENT_FIELDS, name
        assert seg["model_ready"], f"{name}: the model never took over; test history too small"
        for key in ("prequential_auc", "published_auc", "rules_auc"):
            assert 0.0 <= seg[key] <= 1.0, (name, key)
    text = summarize(report)
    assert all(name in text for name in report["segments"])


def test_counts_add_up(sim_file: Path, replayed: tuple[Replay, dict[str, Any], Any]) -> None:
    replay, report, scores = replayed
    lines = sum(1 for line in sim_file.read_bytes().splitlines() if line.strip())
    assert report["events"] == lines
    assert sum(report["results"].values()) == report["events"]
    assert report["results"]["invalid"] == sum(report["invalid_by_error"].values()) > 0
    assert report["results"].get("duplicate", 0) > 0  # the simulator's re-deliveries
    assert report["users"] == len(replay.repo.records)

    per_segment = Counter(s["segment"] for s in scores)
    for name, seg in report["segments"].items():
        assert seg["scores"] == per_segment[name]
        labels = seg["labels"]["positive"] + seg["labels"]["negative"]
        quality = replay.trainer.quality[name].report()
        assert labels == quality["n"] == replay.trainer.models[name].n_learned > 0
        assert seg["labels"]["positive"] == quality["n_pos"]
        assert seg["churners_alerted_before_cancel"] <= seg["churners"]
        assert seg["model_version"] == replay.trainer.models[name].version
    # Every labelled snapshot was a published score; each user-day keeps at most one.
    assert sum(s["labels"]["positive"] + s["labels"]["negative"]
               for s in report["segments"].values()) <= len(scores)  # fmt: skip


def test_model_takes_over_from_rules(replayed: tuple[Replay, dict[str, Any], Any]) -> None:
    _, _, scores = replayed
    for segment in ("course", "saas", "docs"):
        sources = [s["source"] for s in scores if s["segment"] == segment]
        assert sources[0] == "rules"
        switch = sources.index("model")
        assert set(sources[switch:]) == {"model"}, f"{segment}: went back to rules"
        versions = [s["model_version"] for s in scores if s["segment"] == segment]
        assert versions == sorted(versions), f"{segment}: model_version went backwards"


def test_deterministic_except_scored_at(
    sim_file: Path, replayed: tuple[Replay, dict[str, Any], list[dict[str, Any]]]
) -> None:
    _, report, scores = replayed
    _, report2, scores2 = run_replay(sim_file)
    assert report2 == report
    assert without_wall_clock(scores2) == without_wall_clock(scores)


def test_plain_contract_events_replay_like_the_simulator_format(tmp_path: Path) -> None:
    """Lines without a topic: the kind is inferred from the fields.

    A history without faults, because invalid lines count towards the replay's sweep cadence
    (every SWEEP_EVERY lines), so dropping them would shift when labels are learned.
    """
    clean = tmp_path / "clean.jsonl"
    write_jsonl(generate(SimConfig(users=60, days=40, seed=4)), clean)
    plain = tmp_path / "plain.jsonl"
    with plain.open("wb") as fh:
        for line in clean.read_bytes().splitlines():
            fh.write(orjson.dumps(orjson.loads(line)["value"]) + b"\n")
    assert {r.kind for r in read_records(plain)} == {
        "video_views", "logins", "integration_syncs", "document_jobs", "value", "subscriptions"
    }  # fmt: skip
    _, report, scores = run_replay(clean)
    _, plain_report, plain_scores = run_replay(plain)
    assert plain_report == report
    assert report["results"].get("invalid", 0) == 0
    assert any(s["source"] == "model" for s in scores)
    assert without_wall_clock(plain_scores) == without_wall_clock(scores)


def test_cli_writes_scores_state_and_report(
    tmp_path: Path,
    sim_file: Path,
    replayed: tuple[Replay, dict[str, Any], list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, report, scores = replayed
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    out = {name: tmp_path / f"{name}.jsonl" for name in ("scores", "state", "alerts")}
    report_path = tmp_path / "report.json"
    argv = ["replay", str(sim_file), "--report", str(report_path)]
    for name, path in out.items():
        argv += [f"--{name}", str(path)]
    assert main(argv) == 0
    assert "segment" in capsys.readouterr().out

    assert orjson.loads(report_path.read_bytes()) == orjson.loads(orjson.dumps(report))
    cli_scores = [orjson.loads(x) for x in out["scores"].read_bytes().splitlines()]
    assert without_wall_clock(cli_scores) == without_wall_clock(scores)
    for s in cli_scores[:50]:
        assert set(s) == {"user_id", "segment", "ts", "score", "source", "model_version",
                          "horizon_days", "drivers", "trigger", "scored_at"}  # fmt: skip
        assert s["trigger"] in ("event", "daily")
        assert 0.0 <= s["score"] <= 1.0 and len(s["drivers"]) <= 3

    states = [orjson.loads(x) for x in out["state"].read_bytes().splitlines()]
    assert len(states) == report["users"] == len({s["user_id"] for s in states})
    by_user = {s["user_id"]: s for s in states}
    # The read API keeps the newest score of either kind: a daily row is older than the events
    # that were applied before the watermark reached its boundary.
    last: dict[str, dict[str, Any]] = {}
    for s in cli_scores:
        if s["ts"] >= last.get(s["user_id"], s)["ts"]:
            last[s["user_id"]] = s
    for user_id, score in last.items():
        state = by_user[user_id]
        assert set(state) >= {"segment", "churned", "clock", "features", "last_score"}
        assert state["last_score"]["score"] == score["score"]
        assert state["last_score"]["model_version"] == score["model_version"]
    alerts = [orjson.loads(x) for x in out["alerts"].read_bytes().splitlines()]
    n_alerts = sum(sum(s["alerts"].values()) for s in report["segments"].values())
    assert len(alerts) == n_alerts


def test_cli_judges_every_daily_row_against_the_truth(
    tmp_path: Path,
    sim_file: Path,
    replayed: tuple[Replay, dict[str, Any], list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, report, scores = replayed
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    truth = tmp_path / "truth.json"
    ground_truth(SIM).write(truth)
    report_path = tmp_path / "report.json"
    assert main(["replay", str(sim_file), "--truth", str(truth), "--report", str(report_path)]) == 0
    assert "against the truth" in capsys.readouterr().out
    judged = orjson.loads(report_path.read_bytes())
    daily = Counter(s["segment"] for s in scores if s["trigger"] == "daily")
    for name, seg in judged["segments"].items():
        t = seg.pop("truth")
        assert set(t) == {"label_mode", "horizon_days", "daily", "alerts", "cold_start"}
        d = t["daily"]
        # Every daily row is judged or counted as left out: no tail, no sample.
        assert d["rows"] + d["left_out_not_at_risk"] + d["left_out_open"] == daily[name] > 0
        assert sum(b["positives"] for b in d["auc_by_lead"].values()) == d["positives"]
        assert d["oracle_rows"] <= d["rows"]
        assert t["alerts"]["alerts"] == seg["alerts"].get("churn_risk/warning", 0) + seg[
            "alerts"
        ].get("churn_risk/critical", 0)
    # The truth adds to the report and changes nothing else.
    assert judged == orjson.loads(orjson.dumps(report))
