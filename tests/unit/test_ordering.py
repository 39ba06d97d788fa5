import math
import random
from collections import deque

from churnstream.agents.ordering import EventTimeAligner


def test_releases_in_event_time_order_once_no_lagging_source_can_precede() -> None:
    a: EventTimeAligner[str] = EventTimeAligner()
    a.push("A", 10.0, (0, 0), "a10")
    a.push("A", 30.0, (0, 1), "a30")
    a.push("B", 20.0, (1, 0), "b20")
    # B still has unread records: nothing after B's newest time (20) may go out yet.
    assert a.release(["B"]) == ["a10", "b20"]
    assert len(a) == 1
    a.push("B", 40.0, (1, 1), "b40")
    # Sources deliver in order, so B's newest time is a safe frontier for B itself too.
    assert a.release(["B"]) == ["a30", "b40"]
    assert a.release([]) == []


def test_a_lagging_source_that_delivered_nothing_holds_everything_back() -> None:
    a: EventTimeAligner[int] = EventTimeAligner()
    a.push("A", 5.0, (), 1)
    assert a.frontier(["B"]) == -math.inf
    assert a.release(["B"]) == []
    assert a.release([]) == [1]


def test_ties_follow_the_tiebreak_not_arrival() -> None:
    a: EventTimeAligner[str] = EventTimeAligner()
    a.push("B", 7.0, (1, 0, 5), "second")
    a.push("A", 7.0, (0, 3, 9), "first")
    assert a.release([]) == ["first", "second"]


def test_over_fetch_past_the_bound_releases_nothing_early_and_pauses_all_but_the_frontier() -> None:
    a: EventTimeAligner[int] = EventTimeAligner(max_buffered=4, max_hold_s=30.0)
    for i in range(6):  # A is far ahead, its records fetched before any pause took effect
        a.push("A", 10.0 + i, (0,), i, arrived=0.0)
    a.push("B", 2.0, (1,), 20, arrived=0.0)  # B lags: it holds the frontier
    a.push("C", 12.0, (2,), 30, arrived=0.0)  # C looks caught up, and is ahead of B too
    assert len(a) == 8  # twice the bound
    assert a.release(["A", "B"], now=1.0) == [20]  # only what B no longer precedes
    assert a.forced == 0 and len(a) == 7
    # Every source beyond the frontier is paused, the caught-up C too; B is read on.
    assert a.ahead(["A", "B"]) == {"A", "C"}
    a.push("B", 11.0, (1,), 21, arrived=2.0)
    assert a.release(["A", "B"], now=2.0) == [0, 1, 21]
    assert a.ahead(["A", "B"]) == {"A", "C"}  # B, still the frontier, is read on
    a.push("B", 16.0, (1,), 22, arrived=3.0)
    # The frontier moved to A's 15: everything up to it goes, in event-time order.
    assert a.release(["A", "B"], now=3.0) == [2, 30, 3, 4, 5]
    assert a.forced == 0


def test_a_source_that_never_delivers_still_hits_the_last_resort() -> None:
    a: EventTimeAligner[int] = EventTimeAligner(max_buffered=4, max_hold_s=30.0)
    a.push("B", 1.0, (1,), 99, arrived=0.0)
    for i in range(8):
        a.push("A", 10.0 + i, (0,), i, arrived=0.0)
    assert a.release(["B"], now=0.0) == [99]
    # B lags and delivers nothing more (a broker failing its fetches): A waits, paused...
    assert a.ahead(["B"]) == {"A"}
    assert a.release(["B"], now=29.0) == [] and a.forced == 0
    # ...until the frontier stood still for max_hold_s: then A goes, counted.
    assert a.release(["B"], now=31.0) == list(range(8))
    assert a.forced == 8
    assert a.ahead(["B"]) == frozenset()  # drained: everything is fetched again


def test_back_pressure_resumes_once_the_held_events_drain_under_a_quarter() -> None:
    a: EventTimeAligner[int] = EventTimeAligner(max_buffered=8)
    for i in range(10):  # over the bound: fetched before the pause took effect
        a.push("A", 10.0 + i, (0,), i)
    a.push("B", 5.0, (1,), 99)
    assert a.release(["A", "B"]) == [99]
    assert a.ahead(["A", "B"]) == {"A"}
    a.push("B", 16.0, (1,), 100)
    assert a.release(["A", "B"]) == [0, 1, 2, 3, 4, 5, 6, 100]
    # 3 held: under half the bound, but not yet a quarter: A is still paused.
    assert len(a) == 3 and a.ahead(["A", "B"]) == {"A"}
    a.push("B", 30.0, (1,), 101)
    assert a.release(["A", "B"]) == [7, 8, 9]
    assert len(a) == 1 and a.ahead(["A", "B"]) == frozenset()  # drained: all read again
    assert a.forced == 0


def test_any_interleaving_of_sources_gives_the_same_order() -> None:
    rng = random.Random(3)
    streams = {s: sorted(rng.uniform(0, 100) for _ in range(50)) for s in "ABC"}
    expected = sorted((ts, s) for s, tss in streams.items() for ts in tss)
    for _ in range(5):
        a: EventTimeAligner[tuple[float, str]] = EventTimeAligner()
        pos = dict.fromkeys(streams, 0)
        out: list[tuple[float, str]] = []
        while any(pos[s] < len(streams[s]) for s in streams):
            s = rng.choice([s for s in streams if pos[s] < len(streams[s])])
            for _ in range(rng.randint(1, 7)):
                if pos[s] < len(streams[s]):
                    ts = streams[s][pos[s]]
                    a.push(s, ts, (s,), (ts, s))
                    pos[s] += 1
            out += a.release([x for x in streams if pos[x] < len(streams[x])])
        out += a.release([])
        assert out == expected


def test_clear_returns_everything_held() -> None:
    a: EventTimeAligner[str] = EventTimeAligner()
    a.push("A", 1.0, (), "a")
    a.push("B", 2.0, (), "b")
    assert sorted(a.clear()) == ["a", "b"]
    assert len(a) == 0
    assert a.release([]) == []


def test_a_source_keeps_its_own_order_even_when_its_times_go_back() -> None:
    # Offsets of one partition must come out in offset order: idempotency relies on it.
    a: EventTimeAligner[str] = EventTimeAligner()
    a.push("A", 50.0, (0, 1), "a1")
    a.push("A", 10.0, (0, 2), "a2")
    a.push("B", 20.0, (1, 1), "b1")
    assert a.release([]) == ["b1", "a1", "a2"]


def test_an_event_held_too_long_goes_out_with_everything_before_it() -> None:
    a: EventTimeAligner[str] = EventTimeAligner(max_hold_s=2.0)
    a.push("A", 10.0, (), "a10", arrived=100.0)
    a.push("C", 5.0, (), "c5", arrived=101.5)
    a.push("C", 20.0, (), "c20", arrived=101.5)
    assert a.release(["B"], now=101.0) == []
    assert a.release(["B"], now=102.5) == ["c5", "a10"]
    assert a.forced == 2
    assert a.release(["B"], now=104.0) == ["c20"]


def test_grace_holds_an_event_until_every_source_seen_passed_it() -> None:
    a: EventTimeAligner[str] = EventTimeAligner(grace_s=0.3)
    a.push("B", 5.0, (1,), "b5", arrived=0.0)
    assert a.release([], now=0.0) == ["b5"]  # B is the only source: nothing can precede it
    a.push("A", 10.0, (0,), "a10", arrived=1.0)
    # B looks caught up but has delivered nothing as late as 10: its next record may be older.
    assert a.release([], now=1.1) == []
    a.push("B", 8.0, (1,), "b8", arrived=1.2)  # ... and it was
    assert a.release([], now=1.2) == ["b8"]
    assert a.release([], now=1.29) == []
    assert a.release([], now=1.3) == ["a10"]  # grace over: B may simply be idle


def test_grace_ends_early_once_all_sources_passed_the_event() -> None:
    a: EventTimeAligner[str] = EventTimeAligner(grace_s=10.0)
    a.push("A", 10.0, (0,), "a10", arrived=0.0)
    a.push("B", 3.0, (1,), "b3", arrived=0.0)
    assert a.release([], now=0.0) == ["b3"]
    a.push("B", 12.0, (1,), "b12", arrived=0.1)
    assert a.release([], now=0.1) == ["a10"]  # B reached 12: nothing earlier than 10 is coming
    assert a.release([], now=10.2) == ["b12"]


def test_grace_does_not_outlast_the_hold_limit_and_the_bound_does_not_end_it() -> None:
    a: EventTimeAligner[int] = EventTimeAligner(max_buffered=2, max_hold_s=5.0, grace_s=60.0)
    a.push("B", 0.0, (1,), 0, arrived=0.0)
    assert a.release([], now=0.0) == [0]
    for i in range(1, 4):
        a.push("A", float(i), (0,), i, arrived=0.0)
    assert a.release([], now=1.0) == []  # over the bound, but B may still precede them
    assert a.release([], now=4.9) == []
    assert a.release([], now=5.1) == [1, 2, 3]  # held longer than max_hold_s: they go


def test_back_pressure_names_the_lagging_sources_ahead_of_the_frontier() -> None:
    a: EventTimeAligner[int] = EventTimeAligner(max_buffered=12)
    for i in range(5):
        a.push("A", 10.0 + i, (0,), i)
    a.push("B", 2.0, (1,), 99)
    assert a.ahead(["A", "B", "C"]) == frozenset()  # 6 held: not over the high mark
    a.push("A", 20.0, (0,), 5)
    # 7 > 12 // 2: A and B are ahead of C, which has delivered nothing and may precede all.
    assert a.ahead(["A", "B", "C"]) == {"A", "B"}
    # C delivered up to 3: B (2) now holds the frontier and is read; A and C wait for it.
    a.push("C", 3.0, (2,), 100)
    assert a.release(["A", "B", "C"]) == [99]
    assert a.ahead(["A", "B", "C"]) == {"A", "C"}
    # Under a quarter held: everything is fetched again.
    a.push("C", 30.0, (2,), 101)
    assert len(a.release(["C"])) == 8
    assert a.ahead(["A", "B", "C"]) == frozenset()


def _catch_up(
    streams: dict[str, list[float]], speed: dict[str, int], prefetch: int = 0
) -> tuple[EventTimeAligner[float], list[float], int]:
    """A consumer handing out `speed[s]` records of source s per round, paused as the aligner
    asks, except for up to `prefetch` records it had already fetched (handed out even while
    paused, refilled while read). Returns the aligner (bound 40), what it released in order
    and the most events it held."""
    a: EventTimeAligner[float] = EventTimeAligner(max_buffered=40, max_hold_s=math.inf)
    pos = dict.fromkeys(streams, 0)
    buffered = dict.fromkeys(streams, 0)
    paused: frozenset[str] = frozenset()
    out: list[float] = []
    most = 0
    for _ in range(20_000):
        if all(pos[s] == len(streams[s]) for s in streams):
            break
        for s in streams:
            n = buffered[s] if s in paused else speed[s]
            for ts in streams[s][pos[s] : pos[s] + n]:
                a.push(s, ts, (s,), ts)
            pos[s] = min(len(streams[s]), pos[s] + n)
            buffered[s] = 0 if s in paused else min(prefetch, len(streams[s]) - pos[s])
        lagging = [s for s in streams if pos[s] < len(streams[s])]
        most = max(most, len(a))
        out += a.release(lagging)
        paused = a.ahead(lagging)
    out += a.release([])
    return a, out, most


def test_a_catch_up_with_back_pressure_keeps_event_time_order_in_bounded_memory() -> None:
    """A consumer that hands out records per partition, not per event time: one partition's
    history comes 10 records at a time, another's 1 at a time. Paused sources deliver nothing;
    nothing is released out of turn and the held events stay near the bound."""
    rng = random.Random(5)
    streams = {s: sorted(rng.uniform(0, 1000) for _ in range(400)) for s in "ABC"}
    speed = {"A": 10, "B": 1, "C": 3}
    a, out, most = _catch_up(streams, speed)
    assert out == sorted(ts for tss in streams.values() for ts in tss)
    assert a.forced == 0
    assert most <= 40 // 2 + sum(speed.values())


def test_a_catch_up_whose_pauses_take_effect_late_keeps_order_past_the_bound() -> None:
    """As the consumer does: a paused source still hands out what it had prefetched (up to
    `prefetch` records, refilled while it is read), so the held events overshoot the bound;
    they wait their turn, and the overshoot stays within what was in flight."""
    rng = random.Random(7)
    streams = {s: sorted(rng.uniform(0, 1000) for _ in range(600)) for s in "ABCD"}
    speed = {"A": 12, "B": 1, "C": 4, "D": 8}
    prefetch = 15
    a, out, most = _catch_up(streams, speed, prefetch)
    assert out == sorted(ts for tss in streams.values() for ts in tss)
    assert a.forced == 0
    assert most > 40  # the bound was overshot, as in the 800 x 75 catch-up
    assert most <= 40 // 2 + sum(speed.values()) + len(streams) * prefetch


def catch_up_through_a_consumer(
    partitions: int, fetch: int, queue_size: int, batch: int, bound: int
) -> tuple[int, list[float], list[float], int]:
    """A worker that was live (each partition delivered its first record) catches up through
    a consumer modelled as Faust on aiokafka: every partition keeps one prefetched fetch of up
    to `fetch` records, paused or not; a poll hands over the fetches of the partitions not
    paused (oldest first), whole; the agent's queue takes `queue_size` of them and the loop
    `batch` at a time, then asks the aligner what to pause. Returns the most events held, the
    events released, all events in event-time order, and the early releases."""
    rng = random.Random(3)
    logs = {
        p: sorted(rng.uniform(0, 1000) for _ in range(rng.randint(1500, 4000)))
        for p in range(partitions)
    }
    a: EventTimeAligner[float] = EventTimeAligner(max_buffered=bound, max_hold_s=math.inf)
    read = dict.fromkeys(logs, 1)  # fetched from the log
    taken = dict.fromkeys(logs, 1)  # pushed into the aligner
    for p in logs:
        a.push(p, logs[p][0], (p,), logs[p][0])
    prefetched: dict[int, deque[float]] = {}
    polled: deque[tuple[int, float]] = deque()
    queue: deque[tuple[int, float]] = deque()
    paused: frozenset[int] = frozenset()
    out: list[float] = []
    most = 0
    while any(taken[p] < len(logs[p]) for p in logs):
        for p in logs:
            if p not in prefetched and read[p] < len(logs[p]):
                prefetched[p] = deque(logs[p][read[p] : read[p] + fetch])
                read[p] += len(prefetched[p])
        while len(queue) < queue_size:
            if not polled:
                for p in [p for p in prefetched if p not in paused]:
                    polled.extend((p, ts) for ts in prefetched.pop(p))
                if not polled:
                    break
            queue.append(polled.popleft())
        for _ in range(min(batch, len(queue))):
            p, ts = queue.popleft()
            a.push(p, ts, (p,), ts)
            taken[p] += 1
        lagging = [p for p in logs if taken[p] < len(logs[p])]
        most = max(most, len(a))
        out += a.release(lagging)
        paused = a.ahead(lagging)
    out += a.release([])
    return most, out, sorted(ts for tss in logs.values() for ts in tss), a.forced


def test_a_catch_up_holds_about_one_fetch_per_partition_over_the_high_mark() -> None:
    """Under back-pressure only the frontier's partition is read; the frontier moves from
    partition to partition, and each one read again hands over its prefetched fetch whole,
    whose events beyond the frontier wait. So what is held past the high mark grows with
    partitions x fetch (agents/app.py `CONSUMER_MAX_FETCH_BYTES`), not with the poll."""
    bound, queue_size, batch, partitions = 400, 60, 50, 24
    # Fetches large against the bound (the worker's 1 MiB of before): far over it.
    most, out, in_order, forced = catch_up_through_a_consumer(
        partitions, 60, queue_size, batch, bound
    )
    assert out == in_order and forced == 0
    assert most > 2 * bound
    # Small fetches: within the high mark, a batch, the queue and one fetch per partition.
    fetch = 5
    most, out, in_order, forced = catch_up_through_a_consumer(
        partitions, fetch, queue_size, batch, bound
    )
    assert out == in_order and forced == 0
    assert most <= bound // 2 + batch + queue_size + partitions * fetch
    assert most <= bound


def test_no_early_release_while_the_lagging_source_keeps_delivering() -> None:
    a: EventTimeAligner[str] = EventTimeAligner(max_hold_s=2.0)
    a.push("A", 10.0, (), "a10", arrived=0.0)
    for t in range(1, 6):  # B catches up slowly: one event a second, each later than before
        a.push("B", float(t), (), f"b{t}", arrived=float(t))
        assert a.release(["B"], now=float(t)) == [f"b{t}"]
    assert a.forced == 0  # a10 waited 5 s, longer than max_hold_s, but B was read all along
    assert a.release(["B"], now=7.5) == ["a10"]  # B stopped delivering: a10 goes early
    assert a.forced == 1


def test_a_drain_stopped_early_leaves_the_rest_held_in_order() -> None:
    a: EventTimeAligner[str] = EventTimeAligner()
    for i, (source, ts) in enumerate([("A", 1.0), ("B", 2.0), ("A", 3.0), ("B", 4.0)]):
        a.push(source, ts, (i,), f"{source}{ts:.0f}")
    drain = a.drain([])
    assert next(drain) == "A1"
    assert next(drain) == "B2"
    # The caller stops here (a boundary waits for its model): nothing else was popped.
    assert len(a) == 2
    assert a.release([]) == ["A3", "B4"]


def test_time_the_caller_is_blocked_does_not_make_events_overdue() -> None:
    a: EventTimeAligner[str] = EventTimeAligner(max_hold_s=30.0)
    a.push("A", 10.0, (0,), "a10", arrived=0.0)
    a.push("A", 50.0, (1,), "a50", arrived=0.0)
    a.push("B", 20.0, (2,), "b20", arrived=0.0)
    # B lags (unread records after 20): a50 waits for it. The caller holds for 100 s.
    assert list(a.drain(["B"], now=1.0)) == ["a10", "b20"]
    for now in (40.0, 70.0, 100.0):
        a.drain(["B"], now=now, blocked=True)
    # Blocked is the caller's own wait, not a stalled source: nothing goes out early yet...
    assert a.release(["B"], now=101.0) == [] and a.forced == 0
    # ...but B standing still for max_hold_s after that does release it (counted).
    assert a.release(["B"], now=131.0) == ["a50"] and a.forced == 1


def test_the_callers_limit_holds_events_at_and_after_it_without_making_them_overdue() -> None:
    a: EventTimeAligner[int] = EventTimeAligner(max_hold_s=5.0)
    for i, ts in enumerate((1.0, 2.0, 3.0, 4.0)):
        a.push("A" if i % 2 else "B", ts, (0,), i)
    limit = 3.0
    assert list(a.drain([], now=0.0, until=lambda: limit)) == [0, 1]
    assert a.limited
    # Far past max_hold_s: the caller's wait, so nothing goes early and nothing is forced.
    assert list(a.drain([], now=100.0, until=lambda: limit)) == []
    assert a.forced == 0
    # Asked before each event: a limit that moves while draining lets the next one go.
    limits = iter((3.5, 4.5))
    assert list(a.drain([], now=101.0, until=lambda: next(limits))) == [2, 3]
    assert not a.limited


def test_a_full_buffer_holds_at_the_callers_limit_too() -> None:
    a: EventTimeAligner[int] = EventTimeAligner(max_buffered=2)
    for i in range(4):
        a.push("A", float(i), (0,), i)
    assert a.release([], now=0.0) == [0, 1, 2, 3]  # nothing lags: all go
    for i in range(4):
        a.push("A", 10.0 + i, (0,), i)
    # Over the bound: still nothing at or after the limit (the caller's wait ends it).
    assert list(a.drain([], now=0.0, until=lambda: 11.0)) == [0]
    assert a.limited and a.forced == 0
    assert a.ahead([], until=11.0) == {"A"}
    assert list(a.drain([], now=0.0, until=lambda: math.inf)) == [1, 2, 3]


def test_under_back_pressure_every_source_past_the_callers_limit_is_paused() -> None:
    a: EventTimeAligner[int] = EventTimeAligner(max_buffered=8)
    for i in range(5):
        a.push("A", 10.0 + i, (0,), i)  # all past the limit
    a.push("B", 2.0, (1,), 99)  # before it: B is read on
    a.push("C", 12.0, (2,), 100)
    assert a.ahead([], until=5.0) == {"A", "C"}
    # Without a limit the sources past the frontier (B's 2.0) are paused, lagging or not.
    assert a.ahead(["A", "B"], until=math.inf) == {"A", "C"}
    assert a.ahead(["A"], until=math.inf) == frozenset()  # A is the frontier: read on
