"""Backfill's history run (no Kafka): the replay's code up to a cut, pseudonyms as live."""

from __future__ import annotations

import io
from pathlib import Path

from churnstream.agents.backfill import History, Published, run_history
from churnstream.agents.configure import alert_policy, engine_config
from churnstream.model.replay import Replay
from churnstream.model.replay_input import read_records
from churnstream.stream.cli.commands.backfill import BackfillProgress, describe
from churnstream.stream.contract.pseudonym import pseudonym
from churnstream.stream.devtools.simulator import SimConfig, generate, write_jsonl
from churnstream.stream.settings import Settings

DAY = 86400.0
CFG = SimConfig(users=40, days=20, seed=3)
CUT = CFG.start + 12 * DAY
KEY = "0123456789abcdef-test-key"


def history(tmp_path: Path, cut: float | None = None) -> Path:
    path = tmp_path / ("whole.jsonl" if cut is None else "cut.jsonl")
    write_jsonl((r for r in generate(CFG) if cut is None or r.ts < cut), path)
    return path


def test_until_applies_exactly_the_events_before_the_cut(tmp_path: Path) -> None:
    whole = history(tmp_path)
    seen: list[tuple[int, float]] = []
    done = run_history(
        read_records(whole),
        Settings(),
        until=CUT,
        progress=lambda n, t: seen.append((n, t)),
        progress_every=1000,
    )
    # The same as a replay of a file that holds only the events before the cut.
    truncated = history(tmp_path, CUT)
    settings = Settings()
    replay = Replay(engine_config(settings), alert_policy(settings))
    report = replay.run(read_records(truncated))
    assert done.after_until > 0
    assert done.report["events"] + done.after_until == sum(1 for _ in read_records(whole))
    assert done.report["results"] == report["results"]
    assert done.reached < CUT
    assert {u: r.to_bytes() for u, r in done.replay.repo.records.items()} == {
        u: r.to_bytes() for u, r in replay.repo.records.items()
    }
    for segment in replay.trainer.models:
        assert done.replay.trainer.snapshot(segment) == replay.trainer.snapshot(segment)
    # progress: records read and the event time reached, every 1,000 records
    assert [n for n, _ in seen] == list(range(1000, len(seen) * 1000 + 1, 1000))
    assert len(seen) == (done.report["events"] + done.after_until) // 1000
    assert all(t < CUT for _, t in seen) and seen[-1][1] > seen[0][1]


def test_no_cut_applies_the_whole_file_and_reports_the_last_event_time(tmp_path: Path) -> None:
    done = run_history(read_records(history(tmp_path)), Settings())
    assert done.after_until == 0 and done.until is None
    assert CFG.start + 19 * DAY < done.reached < CFG.start + 20 * DAY


def test_scores_and_alerts_go_to_the_given_files_only(tmp_path: Path) -> None:
    scores, alerts = io.BytesIO(), io.BytesIO()
    run_history(read_records(history(tmp_path)), Settings(), scores_out=scores, alerts_out=alerts)
    assert scores.getvalue().count(b"\n") > 1000
    assert b'"alert_id"' in alerts.getvalue()


def test_users_are_stored_under_their_pseudonym_when_the_worker_would(tmp_path: Path) -> None:
    settings = Settings.from_env({"CHURNSTREAM_PSEUDONYM_KEY": KEY})
    done = run_history(read_records(history(tmp_path)), settings, until=CUT)
    plain = run_history(read_records(history(tmp_path)), Settings(), until=CUT)
    assert set(done.replay.repo.records) == {
        pseudonym(u, KEY.encode()) for u in plain.replay.repo.records
    }


def test_users_on_the_erasure_block_list_are_left_out(tmp_path: Path) -> None:
    plain = run_history(read_records(history(tmp_path)), Settings(), until=CUT)
    erased = sorted(plain.replay.repo.records)[:3]
    block = tmp_path / "blocked.txt"
    block.write_text("\n".join(["# erased", *erased]) + "\n")
    done = run_history(
        read_records(history(tmp_path)),
        Settings.from_env({"CHURNSTREAM_BLOCKED_USERS_FILE": str(block)}),
        until=CUT,
    )
    assert set(done.replay.repo.records) == set(plain.replay.repo.records) - set(erased)
    assert done.erased > 0
    assert done.report["events"] + done.erased == plain.report["events"]


def test_describe_says_where_the_live_stream_takes_over(tmp_path: Path) -> None:
    done = run_history(read_records(history(tmp_path)), Settings(), until=CUT)
    text = describe(done, Published(users=40, changelog="c", models={"saas": 7}))
    assert "live stream takes over at " in text and "saas v7" in text
    assert f"{done.after_until:,} at or after --until" in text
    whole = History(done.replay, done.report, None, reached=CUT - 1)
    assert "takes over after" in describe(whole, Published())


def test_progress_line_has_rate_event_time_and_eta() -> None:
    out = io.StringIO()
    progress = BackfillProgress(total=100, stream=out)
    progress._last = -1e9
    progress(50, CUT)
    line = out.getvalue()
    assert "50/100 records" in line and "/s, event time 20" in line and "ETA" in line


def test_users_partitioned_over_processes_give_the_same_history(tmp_path: Path) -> None:
    whole = history(tmp_path)
    users = sorted(run_history(read_records(whole), Settings(), until=CUT).replay.repo.records)
    block = tmp_path / "blocked.txt"  # the pseudonyms of two users
    block.write_text("".join(pseudonym(u, KEY.encode()) + "\n" for u in users[:2]))
    settings = Settings.from_env(
        {"CHURNSTREAM_PSEUDONYM_KEY": KEY, "CHURNSTREAM_BLOCKED_USERS_FILE": str(block)}
    )
    runs = {}
    for name, kw in (("one", {}), ("two", {"jobs": 2, "by_user": True})):
        seen: list[tuple[int, float]] = []
        alerts = io.BytesIO()
        done = run_history(
            read_records(whole),
            settings,
            until=CUT,
            alerts_out=alerts,
            progress=lambda n, t, seen=seen: seen.append((n, t)),
            progress_every=1000,
            **kw,
        )
        runs[name] = (
            done.report,
            (done.after_until, done.erased, done.reached),
            [(u, r.to_bytes()) for u, r in done.replay.repo.records.items()],
            {s: done.replay.trainer.snapshot(s) for s in done.replay.trainer.models},
            alerts.getvalue(),
            [n for n, _ in seen],
        )
    assert runs["two"] == runs["one"]
    assert runs["one"][1][0] > 0 and runs["one"][1][1] > 0  # a cut and an erased user
