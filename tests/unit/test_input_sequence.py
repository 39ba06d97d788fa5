"""InputSequence: each input record once, in offset order, with holes found and repaired."""

from __future__ import annotations

from churnstream.agents.input_sequence import Admit, InputSequence

TP = ("behaviour.logins", 2)


def started(offset: int = 10) -> InputSequence:
    seq = InputSequence(repair_timeout_s=5.0)
    seq.reset({TP: offset})
    return seq


def test_records_in_order_are_taken_and_advance_the_partition() -> None:
    seq = started()
    assert [seq.admit(TP, o) for o in (10, 11, 12)] == [Admit.NEXT] * 3
    assert seq.expected(TP) == 13


def test_a_second_delivery_is_a_repeat_and_changes_nothing() -> None:
    seq = started()
    seq.admit(TP, 10)
    seq.admit(TP, 11)
    # A consumer re-seeked to the committed offset delivers 10 and 11 again.
    assert seq.admit(TP, 10) is Admit.REPEAT
    assert seq.admit(TP, 11) is Admit.REPEAT
    assert seq.expected(TP) == 12
    assert seq.admit(TP, 12) is Admit.NEXT


def test_a_jump_is_a_gap_and_does_not_advance() -> None:
    seq = started()
    seq.admit(TP, 10)
    assert seq.admit(TP, 13) is Admit.GAP  # 11 and 12 never arrived
    assert seq.expected(TP) == 11
    # Until the caller decides, the next jump is a gap again (nothing was skipped).
    assert seq.admit(TP, 14) is Admit.GAP


def test_an_empty_gap_confirmed_by_the_broker_is_skipped() -> None:
    seq = started()
    assert seq.admit(TP, 15) is Admit.GAP  # e.g. transaction markers at 10..14
    seq.skip_to(TP, 15)
    assert seq.admit(TP, 15) is Admit.NEXT
    assert seq.expected(TP) == 16


def test_a_repair_drops_records_beyond_the_hole_until_it_arrives() -> None:
    seq = started()
    seq.admit(TP, 10)
    assert seq.admit(TP, 12) is Admit.GAP
    seq.repairing(TP, now=100.0)  # the consumer was sent back to 11
    # Records still in flight from before the seek are dropped, not processed out of order.
    assert seq.admit(TP, 13) is Admit.REPAIRING
    assert seq.admit(TP, 12) is Admit.REPAIRING
    assert seq.admit(TP, 10) is Admit.REPEAT
    assert seq.admit(TP, 11) is Admit.NEXT  # the hole, delivered again
    assert seq.admit(TP, 12) is Admit.NEXT
    assert seq.admit(TP, 13) is Admit.NEXT
    assert seq.overdue(now=1000.0) == []


def test_a_repair_that_brings_nothing_back_is_overdue_once_per_timeout() -> None:
    seq = started()
    assert seq.admit(TP, 12) is Admit.GAP
    seq.repairing(TP, now=100.0)
    assert seq.overdue(now=104.9) == []
    assert seq.overdue(now=105.0) == [(TP, 10)]
    assert seq.overdue(now=106.0) == []  # re-armed: the caller seeks again
    assert seq.overdue(now=110.0) == [(TP, 10)]


def test_reset_forgets_positions_and_repairs() -> None:
    seq = started()
    seq.admit(TP, 12)
    seq.repairing(TP, now=0.0)
    other = ("business.value", 0)
    seq.reset({other: 0})
    assert seq.expected(TP) is None
    assert seq.overdue(now=1e9) == []
    assert seq.admit(other, 0) is Admit.NEXT


def test_a_partition_missing_from_the_reset_starts_at_its_first_record() -> None:
    seq = InputSequence()
    seq.reset({})
    assert seq.admit(TP, 40) is Admit.NEXT
    assert seq.admit(TP, 42) is Admit.GAP
    assert dict(seq.items()) == {TP: 41}


def test_is_repairing_lasts_until_the_hole_arrives() -> None:
    seq = started()
    assert not seq.is_repairing(TP)
    assert seq.admit(TP, 12) is Admit.GAP
    seq.repairing(TP, now=0.0)
    assert seq.is_repairing(TP)
    assert seq.admit(TP, 10) is Admit.NEXT
    assert not seq.is_repairing(TP)
