"""CSV exports as replay input: mapped columns, typed cells, the same replay as JSON lines."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest

from churnstream.agents.configure import alert_policy, engine_config
from churnstream.model.csv_input import CsvMapping, CsvMappingError, history_records, read_csv
from churnstream.model.replay import Replay
from churnstream.model.replay_input import read_records
from churnstream.stream.contract.validation import Invalid, parse
from churnstream.stream.devtools.simulator import SimConfig, generate, write_jsonl
from churnstream.stream.settings import Settings

# A warehouse's names for a few contract fields and kinds.
RENAMED = {"user_id": "customer", "ts": "event_time", "event_id": "id"}
KIND_NAMES = {"logins": "LOGIN", "video_views": "VIEW"}


def write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    names = sorted({k for row in rows for k in row})
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, names)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_simulated_history_as_csv_replays_like_its_json_lines(tmp_path: Path) -> None:
    sims = list(generate(SimConfig(users=30, days=20, seed=4)))
    jsonl = tmp_path / "h.jsonl"
    write_jsonl(sims, jsonl)
    rows = []
    for rec in read_records(jsonl):
        doc = orjson.loads(rec.value or b"{}")
        row: dict[str, object] = {RENAMED.get(k, k): v for k, v in doc.items()}
        row["type"] = KIND_NAMES.get(rec.kind or "", rec.topic)  # a kind name or topic name
        rows.append(row)
    path = write_csv(tmp_path / "h.csv", rows)
    mapping = CsvMapping.parse(
        ",".join(f"{k}={v}" for k, v in RENAMED.items()) + ",kind=type",
        ",".join(f"{v}={k}" for k, v in KIND_NAMES.items()),
    )
    settings = Settings()

    def report(records: object) -> dict[str, object]:
        replay = Replay(engine_config(settings), alert_policy(settings))
        return replay.run(records)  # type: ignore[arg-type]

    from_csv, from_json = report(read_csv(path, mapping)), report(read_records(jsonl))
    assert from_csv == from_json
    assert from_csv["results"]["ok"] > 1000  # type: ignore[index]


def test_cells_are_typed_by_the_contract_and_bad_ones_are_rejected_by_name(
    tmp_path: Path,
) -> None:
    path = write_csv(
        tmp_path / "a.csv",
        [
            {"user_id": "007", "ts": "1767607300", "video_id": "v", "watched_s": "12.5",
             "duration_s": "60", "seeks": "2", "completed": "yes", "event_id": "e1"},
            {"user_id": "8", "ts": "2026-01-05T10:00:00Z", "success": "FALSE", "event_id": "e2"},
            {"user_id": "9", "ts": "2026-01-05T10:00:00Z", "video_id": "v", "watched_s": "lots",
             "duration_s": "60", "event_id": "e3"},
        ],
    )  # fmt: skip
    events = [parse(r.kind, r.value, 65536) for r in read_csv(path, CsvMapping()) if r.kind]
    view, login, bad = events
    assert not isinstance(view, Invalid) and view.user_id == "007"  # ids stay text
    assert (view.ts, view.watched_s, view.seeks, view.completed) == (1767607300.0, 12.5, 2, True)  # type: ignore[union-attr]
    assert not isinstance(login, Invalid) and login.success is False  # type: ignore[union-attr]
    assert isinstance(bad, Invalid) and bad.error == "bad_type:watched_s"


def test_unknown_kind_values_count_as_invalid_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [{"user_id": "u", "ts": "1", "type": "refund"}])
    (rec,) = read_csv(path, CsvMapping.parse("kind=type"))
    assert rec.kind is None and rec.line == 2


@pytest.mark.parametrize(
    ("columns", "kinds", "message"),
    [
        ("user_id", "", "'user_id' is not name=value"),
        ("", "login=signin", "login=signin: not one of"),
    ],
)
def test_bad_mappings_are_refused_on_one_line(columns: str, kinds: str, message: str) -> None:
    with pytest.raises(CsvMappingError, match=message):
        CsvMapping.parse(columns, kinds)


def test_a_missing_kind_column_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [{"user_id": "u", "ts": "1"}])
    with pytest.raises(CsvMappingError, match="no column 'type'"):
        list(read_csv(path, CsvMapping.parse("kind=type")))


def test_the_file_name_chooses_csv_or_json_lines(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [{"user_id": "u", "ts": "1", "success": "true"}])
    (rec,) = history_records(path)
    assert rec.kind == "logins"
    lines = tmp_path / "a.jsonl"
    lines.write_bytes(b'{"user_id": "u", "ts": 1, "event_id": "e"}\n')
    (rec,) = history_records(lines)
    assert rec.kind == "logins" and rec.topic == "behaviour.logins"
