"""TableRepository: the store only ever holds what the broker acknowledged on the changelog."""

from __future__ import annotations

from dataclasses import dataclass, field

from faust.types import TP

from churnstream.agents.repository import TableRepository
from churnstream.features import FeatureConfig
from churnstream.model.user_record import UserRecord

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
