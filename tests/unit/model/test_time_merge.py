"""Partitions merged by event time up to a cut: order, cuts, records without a time, spikes."""

from __future__ import annotations

from collections.abc import Iterator

from churnstream.model.time_merge import Record, TimeMerge

FAR = 4_000_000_000.0  # 2096


def source(*times: float | None) -> Iterator[Record]:
    return iter([(ts, offset, f"{ts}".encode()) for offset, ts in enumerate(times)])


def merged(sources: dict[str, Iterator[Record]], until: float | None = None) -> tuple[list, dict]:
    merge = TimeMerge(sources, lambda name: (ord(name[0]),), until)
    return [(name, offset) for name, offset, _ in merge], merge.cuts


def test_records_come_by_event_time_then_rank_each_source_in_its_order() -> None:
    order, cuts = merged({"b": source(1, 3, 3, 7), "a": source(2, 3, 9)})
    assert order == [("b", 0), ("a", 0), ("a", 1), ("b", 1), ("b", 2), ("b", 3), ("a", 2)]
    assert cuts == {"a": None, "b": None}  # read to their ends


def test_each_source_stops_at_its_first_record_at_or_after_until() -> None:
    order, cuts = merged({"a": source(1, 2, 5, 6), "b": source(4, 5), "c": source()}, until=5)
    assert order == [("a", 0), ("a", 1), ("b", 0)]
    assert cuts == {"a": 2, "b": 1, "c": None}


def test_a_record_without_a_time_keeps_its_place() -> None:
    order, _ = merged({"a": source(1, None, 8), "b": source(2, 3)})
    assert order == [("a", 0), ("a", 1), ("b", 0), ("b", 1), ("a", 2)]


def test_a_spike_keeps_its_place_instead_of_holding_back_its_source() -> None:
    order, cuts = merged({"a": source(1, FAR, 3, 5), "b": source(2, 4, 6)})
    assert order == [("a", 0), ("a", 1), ("b", 0), ("a", 2), ("b", 1), ("a", 3), ("b", 2)]
    # before a cut it is the backfill's, and the source goes on to its real cut
    order, cuts = merged({"a": source(1, FAR, 3, 5), "b": source(2, 4, 6)}, until=5)
    assert order == [("a", 0), ("a", 1), ("b", 0), ("a", 2), ("b", 1)]
    assert cuts == {"a": 3, "b": 2}


def test_a_source_whose_last_record_is_far_is_cut_there() -> None:
    order, cuts = merged({"a": source(1, FAR)}, until=5)
    assert order == [("a", 0)] and cuts == {"a": 1}
