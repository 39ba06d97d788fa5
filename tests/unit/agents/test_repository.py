"""TableRepository: the store only ever holds what the broker acknowledged on the changelog."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from faust.types import TP

from churnstream.agents.faust_private import store_stats
from churnstream.agents.repository import TableRepository
from churnstream.features import FeatureConfig
from churnstream.model.user_record import UserRecord
from churnstream.stream.contract.dlq import decode_dlq

CHANGELOG = "app-users-changelog"


@dataclass
class DictStore(dict[bytes, bytes]):
    """Faust's memory store is a dict too; this one also keeps the persisted offsets."""

    persisted: dict[TP, int] = field(default_factory=dict)

    def __hash__(self) -> int:
        return id(self)

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted[tp] = offset


@dataclass
class DictTable:
    data: DictStore = field(default_factory=DictStore)
    partitions: int = 4

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)


def repository() -> tuple[TableRepository, DictStore]:
    table = DictTable()
    return TableRepository(table, FeatureConfig(), CHANGELOG), table.data


def changed(repo: TableRepository, user_id: str) -> UserRecord:
    record = repo.get(user_id) or UserRecord.new(user_id, repo.config)
    record.last = {"ts": record.last.get("ts", 0.0) + 1.0, "score": 0.5}
    repo.put(record)
    return record


def test_flushed_records_reach_the_store_only_when_acknowledged() -> None:
    repo, store = repository()
    changed(repo, "u1")
    sent = repo.flush()
    assert [(topic, key) for topic, key, _, _ in sent] == [(CHANGELOG, b"u1")]
    assert store == {}  # a crash now leaves the store as the changelog is
    repo.written({(CHANGELOG, 2): 41, ("churn.scores", 0): 7})
    assert store[b"u1"] == sent[0][2]
    assert store.persisted == {TP(CHANGELOG, 2): 41}  # outputs are not the store's business


def test_records_of_a_failed_send_are_sent_again_with_the_next_flush() -> None:
    repo, store = repository()
    changed(repo, "u1")
    first = repo.flush()  # ... and the send raises: no `written`
    changed(repo, "u2")
    record = changed(repo, "u1")
    again = {key: value for _, key, value, _ in repo.flush()}
    assert set(again) == {b"u1", b"u2"}
    assert again[b"u1"] == record.to_bytes() != first[0][2]  # the newest value wins
    repo.written({})
    assert set(store) == {b"u1", b"u2"}
    assert repo.flush() == []


def test_forget_drops_unacknowledged_records() -> None:
    repo, store = repository()
    changed(repo, "u1")
    repo.flush()
    repo.forget()  # rebalance: the inputs will be delivered again from the committed offset
    assert repo.flush() == []
    assert repo.get("u1") is None
    assert store == {}


def test_delete_sends_a_tombstone_also_for_a_user_only_flushed() -> None:
    repo, store = repository()
    changed(repo, "u1")
    repo.flush()
    assert repo.delete("u1") == (CHANGELOG, b"u1", None, None)
    assert repo.flush() == []
    assert repo.delete("u1") is None  # nothing stored, nothing pending: nothing to erase
    repo.written({})
    assert store == {}


# --- unreadable stored users ------------------------------------------------------------------


@dataclass
class ItemsTable(DictTable):
    def items(self) -> list[tuple[bytes, bytes]]:
        return list(self.data.items())


GARBAGE = b"\x02\xff\x00garbage that is no user record"


def quarantining() -> tuple[TableRepository, DictStore, list[int]]:
    counted: list[int] = []
    table = ItemsTable()
    repo = TableRepository(
        table,
        FeatureConfig(),
        CHANGELOG,
        dlq_topic="churn.dlq",
        on_quarantine=lambda: counted.append(1),
    )
    return repo, table.data, counted


def _quarantined(sent: list[tuple[str, bytes, bytes | None, None]], key: bytes) -> None:
    dead = [value for topic, k, value, _ in sent if topic == "churn.dlq" and k == key]
    assert len(dead) == 1 and dead[0] is not None
    doc = decode_dlq(dead[0])
    assert (doc["error"], doc["source_topic"]) == ("corrupt_state", CHANGELOG)
    assert doc["payload"] == GARBAGE  # the raw bytes kept for inspection
    assert (CHANGELOG, key, None, None) in sent  # and a tombstone, so a restart does not see it


def test_an_unreadable_stored_user_is_quarantined_and_starts_again() -> None:
    repo, store, counted = quarantining()
    store[b"bad"] = GARBAGE
    assert repo.get("bad") is None  # a new user to the caller, not an exception
    assert b"bad" not in store
    assert counted == [1]
    changed(repo, "bad")
    sent = repo.flush()
    _quarantined(sent, b"bad")
    assert [t for t, k, _, _ in sent if k == b"bad"][-1] == CHANGELOG  # new value after
    repo.written({})
    assert repo.flush() == []  # sent once


def test_a_rebuild_skips_unreadable_users_and_quarantines_them() -> None:
    repo, store, counted = quarantining()
    changed(repo, "u1")
    changed(repo, "u2")
    repo.flush()
    repo.written({})
    store[b"bad"] = GARBAGE
    store[b"\xff\xfe"] = GARBAGE  # not even a UTF-8 key
    repo.forget()
    assert sorted(r.user_id for r in repo.records()) == ["u1", "u2"]
    assert counted == [1, 1]
    assert set(store) == {b"u1", b"u2"}
    sent = repo.flush()
    _quarantined(sent, b"bad")
    _quarantined(sent, b"\xff\xfe")


def test_state_size_is_read_without_copying_every_value(tmp_path: Path) -> None:
    """The lag monitor's state gauges: the memory store's dict, RocksDB's own estimates."""
    memory = DictTable()
    memory.data[b"a"], memory.data[b"b"] = b"123", b"45"
    assert store_stats(memory) == (2, 5)
    rocksdict = pytest.importorskip("rocksdict")
    db = rocksdict.Rdict(str(tmp_path / "p0"))
    for i in range(500):
        db[f"user-{i}".encode()] = b"x" * 100
    db.flush()
    rocks = SimpleNamespace(_dbs={0: db})
    users, size = store_stats(rocks)
    assert users == 500
    assert 0 < size <= 60_000  # an estimate of the data on disk (compressed)
    db.close()


def test_a_removed_user_gets_a_tombstone_in_the_next_flush_and_leaves_the_store() -> None:
    expired: list[int] = []
    table = DictTable()
    repo = TableRepository(table, FeatureConfig(), CHANGELOG, on_expire=lambda: expired.append(1))
    store = table.data
    changed(repo, "u1")
    repo.flush()
    repo.written({(CHANGELOG, 0): 5})
    repo.remove("u1")
    assert repo.get("u1") is None  # gone for the detector at once
    assert b"u1" in store  # the store holds what the changelog holds until acknowledged
    assert repo.flush() == [(CHANGELOG, b"u1", None, None)]
    assert repo.get("u1") is None
    repo.written({(CHANGELOG, 0): 6})
    assert b"u1" not in store and expired == [1]
    changed(repo, "u1")  # back: a fresh record
    assert [value is not None for _, _, value, _ in repo.flush()] == [True]
