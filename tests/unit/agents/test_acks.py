"""AckLedger: records are acked only as the finished prefix of their partition."""

from __future__ import annotations

from fake_records import Ev, Msg

from churnstream.agents.acks import AckLedger


def ev(topic: str, partition: int, offset: int) -> Ev:
    return Ev(Msg(topic, partition, offset), f"{topic}[{partition}]@{offset}")


def names(events: list[Ev]) -> list[str]:
    return [e.name for e in events]


def test_a_finished_record_waits_for_the_unfinished_one_before_it() -> None:
    ledger = AckLedger()
    held, invalid = ev("logins", 0, 5), ev("logins", 0, 6)
    ledger.open(held)
    ledger.open(invalid)
    ledger.finish(invalid)  # dead-lettered at once; 5 is still in the aligner
    assert ledger.ready() == []
    ledger.finish(held)
    assert names(ledger.ready()) == ["logins[0]@5", "logins[0]@6"]
    assert len(ledger) == 0


def test_partitions_are_independent() -> None:
    ledger = AckLedger()
    a0, a1, b0 = ev("logins", 0, 1), ev("logins", 0, 2), ev("logins", 1, 7)
    for e in (a0, a1, b0):
        ledger.open(e)
    ledger.finish(b0)
    ledger.finish(a1)
    assert names(ledger.ready()) == ["logins[1]@7"]
    assert len(ledger) == 2
    ledger.finish(a0)
    assert names(ledger.ready()) == ["logins[0]@1", "logins[0]@2"]


def test_finishing_an_unknown_record_changes_nothing_and_clear_forgets() -> None:
    ledger = AckLedger()
    ledger.open(ev("value", 0, 1))
    ledger.finish(ev("value", 3, 1))
    assert ledger.ready() == []
    ledger.clear()
    assert len(ledger) == 0
    ledger.finish(ev("value", 0, 1))
    assert ledger.ready() == []
