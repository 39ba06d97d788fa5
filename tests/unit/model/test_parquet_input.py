"""Parquet exports as replay input: the CSV's column mapping, typed columns, the same replay."""

from __future__ import annotations

import sys
from csv import DictWriter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from churnstream.agents.configure import alert_policy, engine_config
from churnstream.model.csv_input import CsvMapping, HistoryInputError, history_records
from churnstream.model.replay import Replay
from churnstream.model.replay_input import read_records
from churnstream.stream.contract.validation import Invalid, parse, parse_ts
from churnstream.stream.devtools.simulator import SimConfig, generate, write_jsonl
from churnstream.stream.settings import Settings

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

RENAMED = {"user_id": "customer", "ts": "event_time", "event_id": "id"}
KIND_NAMES = {"logins": "LOGIN", "video_views": "VIEW"}


def write_parquet(path: Path, rows: list[dict[str, object]]) -> Path:
    names = sorted({k for row in rows for k in row})
    pq.write_table(pa.Table.from_pylist([{n: row.get(n) for n in names} for row in rows]), path)
    return path


def report(records: object) -> dict[str, object]:
    settings = Settings()
    return Replay(engine_config(settings), alert_policy(settings)).run(records)  # type: ignore[arg-type]


def test_a_simulated_history_as_parquet_replays_like_its_csv_and_json_lines(
    tmp_path: Path,
) -> None:
    sims = list(generate(SimConfig(users=30, days=20, seed=4)))
    jsonl = tmp_path / "h.jsonl"
    write_jsonl(sims, jsonl)
    rows = []
    for rec in read_records(jsonl):
        doc = orjson.loads(rec.value or b"{}")
        row: dict[str, object] = {RENAMED.get(k, k): v for k, v in doc.items()}
        # a warehouse's timestamp column, not text
        row["event_time"] = datetime.fromtimestamp(_epoch(doc["ts"]), UTC)
        row["type"] = KIND_NAMES.get(rec.kind or "", rec.topic)
        rows.append(row)
    mapping = CsvMapping.parse(
        ",".join(f"{k}={v}" for k, v in RENAMED.items()) + ",kind=type",
        ",".join(f"{v}={k}" for k, v in KIND_NAMES.items()),
    )
    parquet = write_parquet(tmp_path / "h.parquet", rows)
    csv_rows = [{**r, "event_time": r["event_time"].isoformat()} for r in rows]  # type: ignore[union-attr]
    csv = tmp_path / "h.csv"
    with csv.open("w", newline="") as fh:
        writer = DictWriter(fh, sorted({k for row in csv_rows for k in row}))
        writer.writeheader()
        writer.writerows(csv_rows)
    from_parquet = report(history_records(parquet, mapping))
    assert from_parquet == report(history_records(csv, mapping))
    assert from_parquet == report(read_records(jsonl))
    assert from_parquet["results"]["ok"] > 1000  # type: ignore[index]


def _epoch(ts: object) -> float:
    value = parse_ts(ts) if isinstance(ts, str) else float(ts)  # type: ignore[arg-type]
    assert value is not None
    return value


def test_columns_keep_their_types_and_numeric_ids_become_text(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "a.parquet",
        [
            {"user_id": 7, "ts": datetime(2026, 1, 5, 10), "video_id": "v", "watched_s": 12.5,
             "duration_s": 60.0, "seeks": 2, "completed": True, "event_id": "e1"},
            {"user_id": 8, "ts": datetime(2026, 1, 5, 11), "video_id": "v", "watched_s": None,
             "duration_s": 60.0, "seeks": None, "completed": None, "event_id": "e2"},
        ],
    )  # fmt: skip
    view, missing = (parse(r.kind, r.value, 65536) for r in history_records(path) if r.kind)
    assert not isinstance(view, Invalid)
    assert (view.user_id, view.ts, view.watched_s, view.seeks, view.completed) == (  # type: ignore[union-attr]
        "7", datetime(2026, 1, 5, 10, tzinfo=UTC).timestamp(), 12.5, 2, True,
    )  # fmt: skip
    # a null cell is an absent field: here a required one, rejected by its usual reason
    assert isinstance(missing, Invalid) and missing.error == "missing_field:watched_s"


def test_a_missing_kind_column_is_refused(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "a.parquet", [{"user_id": "u", "ts": 1}])
    with pytest.raises(HistoryInputError, match="no column 'type'"):
        list(history_records(path, CsvMapping.parse("kind=type")))


def test_without_pyarrow_the_file_is_refused_on_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_parquet(tmp_path / "a.parquet", [{"user_id": "u", "ts": 1}])
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(HistoryInputError, match=r"pip install 'churnstream\[parquet\]'"):
        list(history_records(path))


def test_a_file_that_is_not_parquet_is_refused_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    path.write_text("user_id,ts\n")
    with pytest.raises(HistoryInputError, match="not a readable Parquet file"):
        list(history_records(path))
