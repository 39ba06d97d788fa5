"""Issue 14's speed targets, live on a real broker: daily scoring against event scoring, and a
day boundary over many users while events keep flowing.

Two phases, both against one broker and one machine state:

1. throughput: one simulated history is pre-produced, then consumed to the end by a no-op Faust
   agent (bench/e2e_noop_faust.py), the worker with `CHURNSTREAM_SCORE_EVENTS=false` (a score
   per user-day only), the worker with `=true` (also a score per event) and the no-op agent
   again; each worker's rate is a ratio to the mean of both no-op runs.
2. boundary: a fresh worker (`CHURNSTREAM_SCORE_EVENTS=false`) takes `users` users (a signup
   and one activity each, all on day D0), then gets a paced stream at a fixed rate whose event
   time crosses the point where the watermark (progress less the 1-day lateness) passes D1: the
   worker makes D1's row of every user, `DAILY_ROWS_BUDGET_S` of rows a turn, while the paced
   events go on. Each paced event is the first event of a new user, so its event-to-state
   latency is exact: the first changelog record of that user (the state write, its create
   time) minus the input record's create time. The boundary's span is its first to last daily
   score's `scored_at`; latencies are split by whether the input was produced before, during
   or after that span.

    .venv/bin/python bench/e2e_daily.py [--quick] [--out FILE]   # own local broker
    (bench/run_all.py runs both phases after its own, on its broker, unless --skip-daily)
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import datetime as dt
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from e2e import Phase, _consume_with_worker, _create_topics, _noop, _worker, running
from e2e_data import FULL, QUICK, Sizes, many_users, throughput_records
from e2e_kafka import GroupOffsets, Progress, Throughput, end_offsets, produce, wait_until
from e2e_metrics import scrape
from e2e_procs import rss_bytes

from churnstream.agents.configure import DAILY_ROWS_BUDGET_S, DAILY_ROWS_PER_SWEEP
from churnstream.features import FeatureConfig
from churnstream.model.user_record import UserRecord
from churnstream.stream.contract import topics as t
from churnstream.stream.contract.events import DAY_S, SEGMENTS
from churnstream.stream.contract.validation import parse_ts
from churnstream.stream.devtools.simulator import SimConfig, SimRecord, generate
from churnstream.stream.devtools.simulator.config import DEFAULT_START, LIFECYCLE
from churnstream.stream.settings import Settings

log = logging.getLogger("bench.daily")

D0 = DEFAULT_START  # a UTC midnight: the setup's day
D1 = D0 + DAY_S  # the boundary measured
D2 = D1 + DAY_S  # its rows are made once every source passed D2 (lateness 1 day)
LATENCY_TARGET_S = 1.0
SCORES_TOTAL = "churnstream_scores_total"


@dataclass(frozen=True, slots=True)
class DailySizes:
    """Users held at the boundary and the paced stream around it."""

    users: int
    probes: int  # users the paced events are for
    pace_s: float  # wall seconds of paced events
    before_s: float  # of which before the watermark passes D1


FULL_DAILY = DailySizes(users=100_000, probes=5000, pace_s=75.0, before_s=25.0)
QUICK_DAILY = DailySizes(users=3000, probes=500, pace_s=24.0, before_s=8.0)


@dataclass
class DailyResults:
    """Everything measured by this module; `render` writes it as a BENCHMARKS.md section."""

    events: int = 0
    noop: list[Throughput] = field(default_factory=list)
    workers: dict[str, Throughput] = field(default_factory=dict)
    outputs: dict[str, dict[str, float]] = field(default_factory=dict)
    boundary: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    load_start: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_end: tuple[float, float, float] = (0.0, 0.0, 0.0)
    started: str = ""
    minutes: float = 0.0

    def noop_rate(self) -> float | None:
        runs = [tp.per_second for tp in self.noop]
        return sum(runs) / len(runs) if runs else None

    def ratio(self, mode: str) -> float | None:
        base, tp = self.noop_rate(), self.workers.get(mode)
        return tp.per_second / base if base and tp is not None else None


async def coordinator_ready(bootstrap: str, deadline_s: float = 60.0) -> None:
    """Wait until the broker's group coordinator answers (a fresh broker loads its offsets
    topic first; the no-op run's offset probe would fail meanwhile)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    deadline = time.monotonic() + deadline_s
    try:
        while True:
            try:
                await admin.list_consumer_group_offsets("churnstream-bench-probe")
                return
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)  # polling a condition, with a deadline
    finally:
        await admin.close()


# --- phase 1: throughput ------------------------------------------------------------------


async def throughput(
    run_id: str, workdir: Path, bootstrap: str, sizes: Sizes, res: DailyResults, budget_s: float
) -> None:
    """No-op agent, worker with daily scores only, worker with event scores, no-op again."""
    phase = Phase(run_id, "dtput", workdir / "dtput")
    await _create_topics(phase, bootstrap)
    await produce(throughput_records(sizes), bootstrap, phase.prefix)
    res.events = total = sum((await end_offsets(bootstrap, phase.inputs())).values())
    log.info("produced %d records", total)
    res.noop.append(await _noop(phase, bootstrap, f"{run_id}-dnoop1", total, budget_s))
    log.info("no-op Faust: %.0f/s", res.noop[-1].per_second)
    for flag in ("false", "true"):
        tp, _, out = await _consume_with_worker(
            phase, f"{run_id}-d{flag}", bootstrap, total, budget_s, CHURNSTREAM_SCORE_EVENTS=flag
        )
        res.workers[flag], res.outputs[flag] = tp, out
        log.info("worker, SCORE_EVENTS=%s: %.0f/s", flag, tp.per_second)
    res.noop.append(await _noop(phase, bootstrap, f"{run_id}-dnoop2", total, budget_s))
    log.info("no-op Faust, again: %.0f/s", res.noop[-1].per_second)


# --- phase 2: a day boundary over many users ------------------------------------------------


def _templates() -> dict[str, dict[str, Any]]:
    """One valid simulator record body per input topic (a signup for the lifecycle topic)."""
    out: dict[str, dict[str, Any]] = {}
    for rec in generate(SimConfig(users=30, days=5, seed=3)):
        body = rec.value
        if rec.expect != "valid" or body is None or rec.topic in out:
            continue
        if rec.topic == LIFECYCLE and body.get("event") != "signup":
            continue
        out[rec.topic] = body
    return out


def paced_records(
    users: int, probes: int, count: int, rate: float, before_s: float
) -> Iterator[SimRecord]:
    """`count` events of `probes` of the setup's users (every users/probes-th one), round robin
    over every input topic (a renewal on the lifecycle topic), whose event time runs from
    D1 + 16 h and reaches D2 after `before_s` wall seconds at `rate`: from then on the watermark
    is past D1 and the boundary's rows are made.

    Event time runs faster than wall time (8 h per `before_s`) so that the boundary is reached
    in seconds; it must stay below D3, where the next boundary would start.
    """
    templates = list(_templates().items())
    speed = 8 * 3600.0 / before_s
    if count / rate * speed >= 32 * 3600.0:
        raise ValueError("the paced stream would reach the next boundary (D3)")
    stride = max(1, users // probes)
    for j in range(count):
        i = (j % probes) * stride
        # Each user gets every topic in turn, and every chunk of the stream spans every topic.
        topic, body = templates[(j + j // probes) % len(templates)]
        uid = f"scale-{i:06d}"  # bench/e2e_data.py many_users
        ts = D1 + 16 * 3600.0 + j / rate * speed
        value = {**body, "event_id": f"{uid}-p{j}", "user_id": uid, "ts": round(ts, 3)}
        if "segment" in value:
            value["segment"] = SEGMENTS[i % len(SEGMENTS)]  # as at signup: no segment change
        if topic == LIFECYCLE:
            value["event"] = "renewal"
        yield SimRecord(topic, uid, value, None, ts)


async def _gauge(port: int, name: str) -> int:
    try:
        return int((await asyncio.to_thread(scrape, port)).total(name))
    except OSError:  # endpoint not up yet
        return 0


async def scan(
    bootstrap: str,
    start: dict[TopicPartition, int],
    visit: Callable[[ConsumerRecord[Any, Any]], None],
    deadline_s: float = 300.0,
) -> int:
    """Call `visit` on every record of `start`'s partitions from its offset to the current log
    end (streamed: the changelog of 100k users does not fit comfortably in a list)."""
    ends = await end_offsets(bootstrap, sorted({tp.topic for tp in start}))
    wanted = {tp: end for tp, end in ends.items() if end > start.get(tp, 0)}
    if not wanted:
        return 0
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, max_partition_fetch_bytes=4 << 20
    )
    await consumer.start()
    seen = 0
    deadline = time.monotonic() + deadline_s
    try:
        consumer.assign(list(wanted))
        for tp in wanted:
            consumer.seek(tp, start.get(tp, 0))
        remaining = dict(wanted)
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"scan did not reach the log end in {deadline_s:.0f} s")
            batches = await consumer.getmany(timeout_ms=500, max_records=20_000)
            for tp, records in batches.items():
                for rec in records:
                    if rec.offset < wanted[tp]:
                        visit(rec)
                        seen += 1
            for tp in list(remaining):
                if await consumer.position(tp) >= remaining[tp]:
                    del remaining[tp]
    finally:
        await consumer.stop()
    return seen


def quantiles(values: Sequence[float]) -> dict[str, float]:
    """n, p50, p99 and max of `values` (ms)."""
    if len(values) < 2:
        return {"n": float(len(values))}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"n": float(len(values)), "p50": cuts[49], "p99": cuts[98], "max": max(values)}


async def boundary(
    run_id: str,
    workdir: Path,
    bootstrap: str,
    daily: DailySizes,
    rate: float,
    res: DailyResults,
    budget_s: float,
    rate_note: str = "",
) -> None:
    """A worker holding `daily.users` users crosses D1 while `rate` events/s keep coming."""
    phase = Phase(run_id, "bnd", workdir / "bnd")
    await _create_topics(phase, bootstrap)
    proc, port = _worker(phase, bootstrap, CHURNSTREAM_SCORE_EVENTS="false")
    users = daily.users
    changelog = f"{phase.app_id}-users-changelog"
    scores_topic = phase.prefix + t.SCORES
    with running(proc):
        await wait_until(
            lambda: _gauge(port, "churnstream_worker_up"), 1, budget_s, alive=proc.check_alive
        )
        # Setup: every user's events on D0, from 01:00 to about 22:00 (no boundary passed yet).
        began = time.monotonic()
        sent = await produce(
            many_users(users, start=D0 + 3600.0, span_s=21 * 3600.0), bootstrap, phase.prefix
        )
        setup = Progress("committed offsets, first progress to end offsets")
        async with GroupOffsets(bootstrap, phase.app_id, phase.inputs()) as group:
            await wait_until(group.committed, sent, budget_s * 3, setup, proc.check_alive)
            await wait_until(
                lambda: _gauge(port, "churnstream_state_users"), users, 60.0, None, proc.check_alive
            )
            setup_s = time.monotonic() - began
            rss_before, _ = rss_bytes(proc)
            log.info("boundary: %d users in state after %.0f s", users, setup_s)
            marks = await end_offsets(bootstrap, [*phase.inputs(), changelog, scores_topic])
            scores_before = await _gauge(port, SCORES_TOTAL)
            count = max(100, int(rate * daily.pace_s))
            paced_began = time.monotonic()
            psent = await produce(
                paced_records(users, daily.probes, count, rate, daily.before_s),
                bootstrap,
                phase.prefix,
                rate=rate,
            )
            pace_wall = time.monotonic() - paced_began
            await wait_until(group.committed, sent + psent, budget_s, None, proc.check_alive)
        # Every user's D1 row published (daily scores only in this mode).
        await wait_until(
            lambda: _gauge(port, SCORES_TOTAL),
            scores_before + users,
            budget_s,
            None,
            proc.check_alive,
        )
        rss_after, peak = rss_bytes(proc)
        final = await asyncio.to_thread(scrape, port)
        held = {
            ("at limit: " if "at_limit" in name else "") + labels.get("reason", ""): value
            for name, labels, value in final.samples
            if name in ("churnstream_decisions_held_total", "churnstream_decisions_at_limit_total")
            and value
        }
    # Input (topic, partition, offset, create time) of every paced event, by user key.
    inputs_of: dict[bytes, list[tuple[str, int, int, int]]] = {}
    # (create time, applied offsets) of every state write of a paced user, in changelog order.
    writes_of: dict[bytes, list[tuple[int, dict[tuple[str, int], int]]]] = {}
    daily_at: list[float] = []
    config = FeatureConfig(lateness_s=Settings().lateness_s)

    # Per input partition, the create time of its first record at or past D2: once every
    # partition delivered one, the watermark (progress less 1 day) is past D1.
    past_d2: dict[tuple[str, int], int] = {}

    def on_input(rec: ConsumerRecord[Any, Any]) -> None:
        inputs_of.setdefault(rec.key, []).append(
            (rec.topic, rec.partition, rec.offset, rec.timestamp)
        )
        ts = parse_ts(orjson.loads(rec.value).get("ts"))
        if ts is not None and ts >= D2:
            past_d2.setdefault((rec.topic, rec.partition), rec.timestamp)

    def on_changelog(rec: ConsumerRecord[Any, Any]) -> None:
        if rec.key in inputs_of and rec.value is not None:
            state = UserRecord.from_bytes(rec.key.decode(), rec.value, config).state
            writes_of.setdefault(rec.key, []).append((rec.timestamp, dict(state.offsets)))

    def on_score(rec: ConsumerRecord[Any, Any]) -> None:
        score = orjson.loads(rec.value)
        if score.get("trigger") == "daily":
            at = parse_ts(score["scored_at"])
            if at is not None:
                daily_at.append(at * 1000.0)

    def since_marks(*topics: str) -> dict[TopicPartition, int]:
        return {tp: off for tp, off in marks.items() if tp.topic in topics}

    await scan(bootstrap, since_marks(*phase.inputs()), on_input)
    await scan(bootstrap, since_marks(changelog), on_changelog)
    await scan(bootstrap, since_marks(scores_topic), on_score)
    if not daily_at:
        raise RuntimeError("no daily score was published after the paced stream")
    first, last = min(daily_at), max(daily_at)
    # The boundary begins when its last input partition passed D2 (as produced).
    opened = float(max(past_d2.values())) if past_d2 else first
    split: dict[str, list[float]] = {"before": [], "during": [], "after": [], "all": []}
    written_during = 0  # paced events whose state was written while the rows were being made
    for key, events in inputs_of.items():
        writes = writes_of.get(key, [])
        for topic, partition, offset, at in events:
            # The first write of the user's state that holds the event: applied offsets only
            # grow from one write of a user to the next.
            i = bisect.bisect_left(
                writes, offset, key=lambda w, tp=(topic, partition): w[1].get(tp, -1)
            )
            if i == len(writes):
                continue
            lat = float(writes[i][0] - at)
            written_during += opened <= writes[i][0] <= last
            window = "before" if at < opened else "during" if at <= last else "after"
            split[window].append(lat)
            split["all"].append(lat)
    res.boundary = {
        "users": users,
        "setup_records": sent,
        "setup_s": setup_s,
        "setup_rate": setup.result().per_second,
        "rate": rate,
        "paced": psent,
        "rate_note": rate_note,
        "before_s": daily.before_s,
        "probes": len(inputs_of),
        "paced_rate": psent / pace_wall if pace_wall > 0 else 0.0,
        "matched": len(split["all"]),
        "daily_rows": len(daily_at),
        "boundary_s": (last - first) / 1000.0,
        "open_to_last_s": (last - opened) / 1000.0,
        "open_to_first_s": (first - opened) / 1000.0,
        "written_during": written_during,
        "held": held,
        "rows_per_sweep": DAILY_ROWS_PER_SWEEP,
        "rows_budget_ms": DAILY_ROWS_BUDGET_S * 1e3,
        "rss_before": rss_before,
        "rss_after": rss_after,
        "peak_rss": peak,
        "latency_ms": {k: quantiles(v) for k, v in split.items()},
    }
    log.info("boundary: %s", res.boundary)


# --- the BENCHMARKS.md section ------------------------------------------------------------


def _num(x: float | None, fmt: str = ",.0f") -> str:
    return "-" if x is None else format(x, fmt)


def _met(ok: bool | None) -> str:
    return {True: "**met**", False: "**not met**", None: "-"}[ok]


def _held(held: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:,.0f}" for k, v in sorted(held.items())) or "none"


def render(res: DailyResults, *, quick: bool) -> str:
    """The section `## Issue 14 speed targets: ...` of BENCHMARKS.md."""
    load0 = ", ".join(f"{x:.2f}" for x in res.load_start)
    load1 = ", ".join(f"{x:.2f}" for x in res.load_end)
    lines = [
        "## Issue 14 speed targets: daily scoring, live (`bench/e2e_daily.py`)",
        "",
        f"Measured {res.started} in {res.minutes:.1f} minutes on {os.cpu_count()} cores shared "
        f"with other jobs (load average 1, 5, 15 min: {load0} at the start, {load1} at the "
        "end), one local broker for both phases; ratios are to the no-op Faust agent of the "
        "same run.",
        "",
    ]
    if quick:
        lines += ["**Smoke run (`--quick`): sizes are tiny, the numbers mean nothing.**", ""]
    if res.errors:
        lines += ["**Phases that failed:**", ""]
        lines += [f"- {name}: `{error}`" for name, error in res.errors.items()] + [""]
    b = res.boundary
    lat = b.get("latency_ms", {})
    p99_during = lat.get("during", {}).get("p99")
    false_r, true_r = res.ratio("false"), res.ratio("true")
    lines += ["| target | measured | |", "|---|---|---|"]
    lines += [
        "| live: daily scoring faster than a score per event (before: full pipeline 0.57x "
        f"no-op) | `SCORE_EVENTS=false` {_num(false_r, '.2f')}x, `=true` "
        f"{_num(true_r, '.2f')}x no-op | "
        f"{_met(None if false_r is None or true_r is None else false_r > true_r)} |",
        f"| a boundary over {b.get('users', 0):,} users in one worker takes a measured time | "
        f"{_num(b.get('boundary_s'), '.1f')} s from first to last of {b.get('daily_rows', 0):,}"
        f" rows ({_num(b.get('open_to_last_s'), '.1f')} s from the boundary's opening) | "
        f"{_met(None if not b else True)} |",
        "| p99 event-to-state latency during the boundary <= 1 s | "
        f"{_num(p99_during)} ms (before it: {_num(lat.get('before', {}).get('p99'))} ms) | "
        f"{_met(None if p99_during is None else p99_during <= LATENCY_TARGET_S * 1000)} |",
        "",
        f"Throughput: one simulated history, {res.events:,} records in 6 topics x 4 "
        "partitions, pre-produced, then consumed to the end by each in turn (own group; rate "
        "from committed offsets, first progress to the end):",
        "",
        "| consumer | records timed | seconds | events/s | x no-op (mean) |",
        "|---|---:|---:|---:|---:|",
    ]
    rows: list[tuple[str, Throughput | None]] = [
        ("no-op Faust agent, first", res.noop[0] if res.noop else None),
        ("worker, `CHURNSTREAM_SCORE_EVENTS=false` (daily rows only)", res.workers.get("false")),
        (
            "worker, `CHURNSTREAM_SCORE_EVENTS=true` (also a score per event)",
            res.workers.get("true"),
        ),
        ("no-op Faust agent, again", res.noop[1] if len(res.noop) > 1 else None),
    ]
    base = res.noop_rate()
    for name, tp in rows:
        if tp is None:
            lines.append(f"| {name} | - | - | - | - |")
            continue
        ratio = tp.per_second / base if base else None
        lines.append(
            f"| {name} | {tp.records:,} | {tp.seconds:.2f} | {tp.per_second:,.0f} | "
            f"{_num(ratio, '.2f')} |"
        )
    for mode, out in res.outputs.items():
        lines += [
            "",
            f"`SCORE_EVENTS={mode}` published {out['scores']:,.0f} scores and {out['alerts']:,.0f} "
            f"alerts, learned {out['labels']:,.0f} labels, held {out['state_users']:,.0f} users "
            f"({out['state_bytes'] / max(1.0, out['state_users']):,.0f} B/user), RSS "
            f"{out['rss_bytes'] / 2**20:.0f} MiB.",
        ]
    if b:
        lines += [
            "",
            f"Boundary: a fresh worker (`SCORE_EVENTS=false`) took {b['users']:,} users "
            f"({b['setup_records']:,} records, all on day D0; {b['setup_s']:.0f} s of setup, "
            f"consumed at {b['setup_rate']:,.0f}/s; RSS {b['rss_before'] / 2**20:.0f} MiB), "
            f"then {b['paced']:,} events at {b['paced_rate']:,.0f}/s ({b['rate_note']}) for "
            f"{b['probes']:,} of those users, over all six input topics, whose event time "
            "crossed the point where the watermark passes D1 (every source past D2, lateness "
            f"1 day) about {b['before_s']:.0f} s in. The worker made D1's row of every user "
            f"({b['rows_budget_ms']:.0f} ms of rows a turn, {b['rows_per_sweep']:,} at most) "
            "while the events went on: "
            f"{b['daily_rows']:,} daily scores from the first `scored_at` to the last in "
            f"**{b['boundary_s']:.1f} s**, the first {b['open_to_first_s']:.1f} s after the "
            "last input partition's first record past D2 was produced (the boundary opened; "
            f"decisions held, by reason: {_held(b['held'])}); RSS after "
            f"{b['rss_after'] / 2**20:.0f} MiB (peak {b['peak_rss'] / 2**20:.0f} MiB).",
            "",
            "Event-to-state latency of each paced event: the create time of the first changelog "
            "record of its user whose state holds it (its input offset applied; the record is "
            "stamped when the batch is built, before the broker's acknowledgement and the input "
            "commit) minus the input record's create time; "
            f"{b['matched']:,} of {b['paced']:,} events matched; "
            f"{b.get('written_during', 0):,} of them reached the state between the boundary's "
            "opening and its last daily score. Split by when the input was "
            "produced relative to the boundary (from its opening, as above, to its last daily "
            "score):",
            "",
            "| input produced | events | p50 | p99 | max |",
            "|---|---:|---:|---:|---:|",
        ]
        for window in ("before", "during", "after", "all"):
            q = lat.get(window, {})
            lines.append(
                f"| {window} the boundary | {int(q.get('n', 0)):,} | {_num(q.get('p50'))} ms | "
                f"{_num(q.get('p99'))} ms | {_num(q.get('max'))} ms |"
            )
    return "\n".join(lines) + "\n"


# --- running it -------------------------------------------------------------------------------


async def run_daily(
    bootstrap: str,
    sizes: Sizes,
    daily: DailySizes,
    workdir: Path,
    *,
    budget_s: float = 300.0,
    rate: float | None = None,
    boundary_only: bool = False,
    throughput_only: bool = False,
) -> DailyResults:
    """Both phases on `bootstrap`; a failed phase is reported, the other still runs."""
    run_id = f"daily{int(time.time())}"
    res = DailyResults(
        load_start=os.getloadavg(),
        started=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    began = time.monotonic()
    await coordinator_ready(bootstrap)
    try:
        if not boundary_only:
            await throughput(run_id, workdir, bootstrap, sizes, res, budget_s)
    except Exception as exc:
        log.exception("throughput phase failed")
        res.errors["throughput"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    note = "given"
    if rate is None:
        measured = res.workers.get("false")
        rate = measured.per_second / 2 if measured is not None else 1000.0
        note = "half the `SCORE_EVENTS=false` rate above" if measured else "a default"
    try:
        if not throughput_only:
            await boundary(run_id, workdir, bootstrap, daily, rate, res, budget_s, note)
    except Exception as exc:
        log.exception("boundary phase failed")
        res.errors["boundary"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    res.load_end = os.getloadavg()
    res.minutes = (time.monotonic() - began) / 60.0
    return res


@contextlib.contextmanager
def _broker(workdir: Path) -> Iterator[str]:
    from churnstream.stream.devtools.kafka_local import LocalKafka

    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    kafka = LocalKafka(workdir / "kafka", die_with_parent=True)
    try:
        yield kafka.start()
    finally:
        kafka.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny sizes")
    parser.add_argument("--users", type=int, default=None, help="users held at the boundary")
    parser.add_argument("--rate", type=float, default=None, help="paced events/s")
    parser.add_argument("--out", type=Path, default=None, help="write the section here")
    only = parser.add_mutually_exclusive_group()
    only.add_argument(
        "--boundary-only", action="store_true", help="skip the throughput phase (needs --rate)"
    )
    only.add_argument("--throughput-only", action="store_true", help="skip the boundary phase")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    sizes, daily = (QUICK, QUICK_DAILY) if args.quick else (FULL, FULL_DAILY)
    if args.users is not None:
        daily = DailySizes(args.users, min(daily.probes, args.users), daily.pace_s, daily.before_s)
    workdir = Path(tempfile.mkdtemp(prefix="churnstream-daily-"))
    with _broker(workdir) as bootstrap:
        res = asyncio.run(
            run_daily(
                bootstrap,
                sizes,
                daily,
                workdir,
                budget_s=120.0 if args.quick else 300.0,
                rate=args.rate,
                boundary_only=args.boundary_only,
                throughput_only=args.throughput_only,
            )
        )
    text = render(res, quick=args.quick)
    print(text)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    log.info("work dir (logs): %s", workdir)
    return 1 if res.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
