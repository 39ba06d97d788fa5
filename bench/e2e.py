"""End-to-end benchmark on a real broker: baselines, the worker, latency and state at scale.

Phases, all against one broker and one machine state (see bench/run_all.py):
1. throughput: one simulated history is pre-produced to fresh topics, then consumed to the end
   by (a) a bare aiokafka + orjson loop, (b) a no-op Faust agent, (c) the churnstream worker,
   each with its own group id;
2. latency: a fresh worker gets a simulated stream at half of (c)'s rate; event-to-score
   latency from the records (scored_at - input record timestamp) and from the worker's
   histogram;
3. scale: a fresh worker gets `scale_users` users; RSS and serialized state bytes per user.
Every phase uses its own topic prefix and app id, so no phase sees another's records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from e2e_data import Sizes, latency_records, many_users, throughput_records
from e2e_kafka import (
    POLL_S,
    GroupOffsets,
    Progress,
    Throughput,
    bare_consume,
    end_offsets,
    produce,
    read_all,
    wait_until,
)
from e2e_metrics import bucket_delta, histogram_quantile, scrape, share_at_most
from e2e_procs import rss_bytes, start_bench_worker, start_noop_faust

from churnstream.stream.contract import topics as t
from churnstream.stream.contract.validation import parse_ts
from churnstream.stream.devtools.kafka_local import free_port
from churnstream.stream.devtools.processes import ManagedProcess
from churnstream.stream.kafka.admin import create_topics
from churnstream.stream.settings import Settings

log = logging.getLogger("bench.e2e")

CONSUMED = "churnstream_records_consumed_total"
LATENCY = "churnstream_event_to_score_latency_seconds"
LATENCY_TARGET_S = 0.25
INPUT_NAMES = tuple(t.INPUT_TOPICS.values())


@dataclass
class Phase:
    """A named part of the run: its prefix, app id and working directory."""

    run_id: str
    name: str
    workdir: Path

    @property
    def prefix(self) -> str:
        return f"{self.run_id}.{self.name}."

    @property
    def app_id(self) -> str:
        return f"{self.run_id}-{self.name}"

    def inputs(self) -> list[str]:
        return [self.prefix + n for n in INPUT_NAMES]


@dataclass
class E2EResults:
    """Everything measured; rendered by bench/e2e_report.py."""

    events: int = 0
    produce: Throughput | None = None
    bare: Throughput | None = None
    noop: Throughput | None = None
    noop_after: Throughput | None = None
    features: Throughput | None = None
    features_outputs: dict[str, float] = field(default_factory=dict)
    worker: Throughput | None = None
    worker_by_metric: Throughput | None = None
    worker_outputs: dict[str, float] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    latency_variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    scale: dict[str, Any] = field(default_factory=dict)
    restart: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def running(proc: ManagedProcess) -> Iterator[ManagedProcess]:
    """Stop `proc` however the block ends."""
    try:
        yield proc
    finally:
        proc.stop()


def _metric_probe(port: int, sample: Callable[[Any], None] | None = None) -> Callable[[], Any]:
    async def probe() -> int:
        try:
            s = await asyncio.to_thread(scrape, port)
        except OSError:  # endpoint not up yet
            return 0
        if sample is not None:
            sample(s)
        return int(s.sum_where(CONSUMED, "topic", INPUT_NAMES))

    return probe


def _worker(phase: Phase, bootstrap: str, **extra_env: str) -> tuple[ManagedProcess, int]:
    port = free_port()
    proc = start_bench_worker(
        bootstrap=bootstrap,
        prefix=phase.prefix,
        app_id=phase.app_id,
        data_dir=phase.workdir / "data",
        metrics_port=port,
        web_port=free_port(),
        log=phase.workdir / "worker.log",
        extra_env=extra_env,
    )
    return proc, port


async def _create_topics(phase: Phase, bootstrap: str) -> None:
    await create_topics(Settings(topic_prefix=phase.prefix), bootstrap=bootstrap)


async def throughput(
    run_id: str, workdir: Path, bootstrap: str, sizes: Sizes, res: E2EResults, budget_s: float
) -> None:
    """(a), (b), (c), (d) and (b) again over one pre-produced history.

    (b) runs before and after the workers: the machine's state drifts over minutes, and the
    ratios use the mean of both no-op runs.
    """
    phase = Phase(run_id, "tput", workdir / "tput")
    await _create_topics(phase, bootstrap)
    records = throughput_records(sizes)
    began = time.monotonic()
    sent = await produce(records, bootstrap, phase.prefix)
    res.produce = Throughput(sent, time.monotonic() - began, "acks=all, as fast as possible")
    ends = await end_offsets(bootstrap, phase.inputs())
    res.events = total = sum(ends.values())
    log.info("produced %d records (%.0f/s)", total, res.produce.per_second)

    res.bare = await bare_consume(bootstrap, phase.inputs(), total, f"{run_id}-bare", budget_s)
    log.info("(a) bare aiokafka: %.0f/s", res.bare.per_second)
    res.noop = await _noop(phase, bootstrap, f"{run_id}-noop", total, budget_s)
    log.info("(b) no-op Faust: %.0f/s", res.noop.per_second)
    res.features, _, res.features_outputs = await _consume_with_worker(
        phase, f"{run_id}-feat", bootstrap, total, budget_s, CHURNSTREAM_SCORING="false"
    )
    log.info("(c) worker, ingest + features: %.0f/s", res.features.per_second)
    res.worker, res.worker_by_metric, res.worker_outputs = await _consume_with_worker(
        phase, phase.app_id, bootstrap, total, budget_s
    )
    log.info("(d) worker, full pipeline: %.0f/s", res.worker.per_second)
    res.noop_after = await _noop(phase, bootstrap, f"{run_id}-noop2", total, budget_s)
    log.info("(b) no-op Faust, again: %.0f/s", res.noop_after.per_second)


async def _noop(
    phase: Phase, bootstrap: str, app_id: str, total: int, budget_s: float
) -> Throughput:
    with running(
        start_noop_faust(
            bootstrap=bootstrap,
            app_id=app_id,
            topics=phase.inputs(),
            data_dir=phase.workdir / f"{app_id}-data",
            web_port=free_port(),
            log=phase.workdir / f"{app_id}.log",
        )
    ) as noop:
        progress = Progress("committed offsets, first progress to end offsets")
        async with GroupOffsets(bootstrap, app_id, phase.inputs()) as group:
            await wait_until(group.committed, total, budget_s, progress, noop.check_alive)
        return progress.result()


async def _consume_with_worker(
    phase: Phase, app_id: str, bootstrap: str, total: int, budget_s: float, **env: str
) -> tuple[Throughput, Throughput | None, dict[str, float]]:
    """A worker of its own group over the phase's topics, timed by commits and by its metric."""
    workdir = phase.workdir / app_id
    port = free_port()
    proc = start_bench_worker(
        bootstrap=bootstrap,
        prefix=phase.prefix,
        app_id=app_id,
        data_dir=workdir / "data",
        metrics_port=port,
        web_port=free_port(),
        log=workdir / "worker.log",
        extra_env=env,
    )
    with running(proc):
        by_commit = Progress("committed offsets, first progress to end offsets")
        by_metric = Progress(f"{CONSUMED}, first progress to the count")
        metric_probe = _metric_probe(port)

        async def both() -> int:
            by_metric.sample(await metric_probe())
            return await group.committed()

        async with GroupOffsets(bootstrap, app_id, phase.inputs()) as group:
            try:
                await wait_until(both, total, budget_s, by_commit, proc.check_alive)
            except TimeoutError as exc:
                seen = by_metric.last[1] if by_metric.last else 0
                raise TimeoutError(f"worker: {exc} (committed); {seen:,} by {CONSUMED}") from None
        metric: Throughput | None = None
        with contextlib.suppress(RuntimeError):
            metric = by_metric.result()
        return by_commit.result(), metric, await _outputs(port, proc)


async def _outputs(port: int, proc: ManagedProcess) -> dict[str, float]:
    """What the worker did, from its metrics, once the state gauges caught up."""
    s = await _settled(port)
    rss, peak = rss_bytes(proc)
    return {
        "scores": s.total("churnstream_scores_total"),
        "alerts": s.total("churnstream_alerts_total"),
        "labels": s.total("churnstream_labels_learned_total"),
        "dlq": s.total("churnstream_dlq_records_total"),
        "state_users": s.total("churnstream_state_users"),
        "state_bytes": s.total("churnstream_state_bytes"),
        "rss_bytes": rss,
        "peak_rss_bytes": peak,
    }


async def _settled(port: int, quiet_s: float = 6.0, deadline_s: float = 40.0) -> Any:
    """A scrape whose state gauges have not changed for `quiet_s` (the monitor refreshes them
    every few seconds, so the first read after the input is done can be stale)."""
    deadline = time.monotonic() + deadline_s
    last = await asyncio.to_thread(scrape, port)
    since = time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
        now = await asyncio.to_thread(scrape, port)
        key = ("churnstream_state_users", "churnstream_state_bytes")
        if any(now.total(k) != last.total(k) for k in key):
            since = time.monotonic()
        last = now
        if time.monotonic() - since >= quiet_s:
            break
    return last


async def latency(
    phase: Phase, bootstrap: str, sizes: Sizes, rate: float, budget_s: float, **env: str
) -> dict[str, Any]:
    """Event-to-score latency at a fixed produce `rate` on a warmed-up worker (`env` set)."""
    await _create_topics(phase, bootstrap)
    warm = 500
    paced = max(100, int(rate * sizes.latency_seconds))
    records = latency_records(warm + paced)
    proc, port = _worker(phase, bootstrap, **env)
    with running(proc):
        await produce(records[:warm], bootstrap, phase.prefix)
        async with GroupOffsets(bootstrap, phase.app_id, phase.inputs()) as group:
            # Committed means scored and observed: the window below holds paced records only.
            await wait_until(group.committed, warm, budget_s, alive=proc.check_alive)
        before = (await asyncio.to_thread(scrape, port)).buckets(LATENCY)
        paced_from_ms = time.time() * 1000.0
        began = time.monotonic()
        sent = await produce(records[warm:], bootstrap, phase.prefix, rate=rate)
        produce_s = time.monotonic() - began
        async with GroupOffsets(bootstrap, phase.app_id, phase.inputs()) as group:
            await wait_until(group.committed, warm + sent, budget_s, alive=proc.check_alive)
        after = (await asyncio.to_thread(scrape, port)).buckets(LATENCY)
    window = bucket_delta(after, before)
    exact = await _latency_from_records(phase, bootstrap, paced_from_ms)
    result = {
        "target_rate": rate,
        "achieved_rate": sent / produce_s if produce_s > 0 else 0.0,
        "records": sent,
        "seconds": produce_s,
        "histogram_p50": histogram_quantile(0.5, window),
        "histogram_p99": histogram_quantile(0.99, window),
        "histogram_share_within_target": share_at_most(LATENCY_TARGET_S, window),
        "histogram_count": window[-1][1] if window else 0,
        **exact,
    }
    log.info("latency at %.0f/s with %s: %s", rate, env or "defaults", result)
    return result


async def _latency_from_records(
    phase: Phase, bootstrap: str, paced_from_ms: float
) -> dict[str, Any]:
    """scored_at of each score minus the Kafka timestamp of the input record it scored.

    A score names its user and event time; the input with that (user, event time) is the one
    that produced it (the simulator gives each user at most one event per millisecond).
    """
    appended: dict[tuple[str, int], int] = {}
    for rec in await read_all(bootstrap, phase.inputs()):
        if rec.timestamp < paced_from_ms:
            continue  # warm-up records
        body = orjson.loads(rec.value)
        ts = parse_ts(body.get("ts"))
        if ts is not None:
            appended[(str(body.get("user_id")), round(ts * 1000))] = rec.timestamp
    lat_ms: list[float] = []
    for rec in await read_all(bootstrap, [phase.prefix + t.SCORES]):
        score = orjson.loads(rec.value)
        if score.get("trigger") == "daily":
            continue  # made at a boundary under the watermark, for no one input record
        ts, scored = parse_ts(score["ts"]), parse_ts(score["scored_at"])
        if ts is None or scored is None:
            continue
        at = appended.get((score["user_id"], round(ts * 1000)))
        if at is not None:
            lat_ms.append(scored * 1000.0 - at)
    if len(lat_ms) < 2:
        return {"matched_scores": len(lat_ms)}
    cuts = statistics.quantiles(lat_ms, n=100, method="inclusive")
    return {
        "matched_scores": len(lat_ms),
        "records_p50_ms": cuts[49],
        "records_p90_ms": cuts[89],
        "records_p99_ms": cuts[98],
        "records_max_ms": max(lat_ms),
    }


async def scale(
    run_id: str, workdir: Path, bootstrap: str, sizes: Sizes, res: E2EResults, budget_s: float
) -> None:
    """RSS and state bytes of one worker holding `sizes.scale_users` users."""
    phase = Phase(run_id, "scale", workdir / "scale")
    await _create_topics(phase, bootstrap)
    proc, port = _worker(phase, bootstrap)
    users = sizes.scale_users

    async def state_users() -> int:
        try:
            return int((await asyncio.to_thread(scrape, port)).total("churnstream_state_users"))
        except OSError:
            return 0

    async def worker_up() -> int:
        try:
            return int((await asyncio.to_thread(scrape, port)).total("churnstream_worker_up"))
        except OSError:
            return 0

    with running(proc):
        # Idle baseline: the metrics endpoint is up and the processing agent has started.
        await wait_until(worker_up, 1, budget_s, alive=proc.check_alive)
        idle_rss, _ = rss_bytes(proc)
        sent = await produce(many_users(users), bootstrap, phase.prefix)
        progress = Progress("committed offsets, first progress to end offsets")
        async with GroupOffsets(bootstrap, phase.app_id, phase.inputs()) as group:
            await wait_until(group.committed, sent, budget_s, progress, proc.check_alive)
        # The state gauges are refreshed by the monitor timer (every few seconds).
        await wait_until(state_users, users, 60.0, alive=proc.check_alive)
        out = await _outputs(port, proc)
    res.scale = {
        "users": users,
        "records": sent,
        "throughput": progress.result(),
        "idle_rss_bytes": idle_rss,
        **out,
    }
    log.info("scale: %s", res.scale)


async def restart(
    run_id: str, workdir: Path, bootstrap: str, sizes: Sizes, res: E2EResults, budget_s: float
) -> None:
    """Restart of a RocksDB worker on its data directory: with the changelog offsets the store
    records, and with them deleted (what every restart did before the worker recorded them)."""
    phase = Phase(run_id, "restart", workdir / "restart")
    await _create_topics(phase, bootstrap)
    rocksdb = {"CHURNSTREAM_STORE": "rocksdb://"}
    users = sizes.restart_users
    sent = await produce(many_users(users), bootstrap, phase.prefix)
    async with GroupOffsets(bootstrap, phase.app_id, phase.inputs()) as group:
        proc, _ = _worker(phase, bootstrap, **rocksdb)
        with running(proc):
            await wait_until(group.committed, sent, budget_s, alive=proc.check_alive)
        changelog = f"{phase.app_id}-users-changelog"
        records = sum((await end_offsets(bootstrap, [changelog])).values())
        timings: dict[str, float] = {}
        for variant in ("recorded", "deleted"):
            if variant == "deleted":
                _delete_recorded_offsets(phase.workdir / "data")
            began = time.monotonic()
            proc, _ = _worker(phase, bootstrap, **rocksdb)
            with running(proc):
                # Two new records, then wait until they are committed: start, recovery, join.
                sent += await produce(many_users(1, start=time.time()), bootstrap, phase.prefix)
                await wait_until(group.committed, sent, budget_s, alive=proc.check_alive)
                timings[variant] = time.monotonic() - began
    res.restart = {"users": users, "changelog_records": records, **timings}
    log.info("restart: %s", res.restart)


def _delete_recorded_offsets(data_dir: Path) -> None:
    from faust.stores.rocksdb import Store
    from rocksdict import Rdict

    paths = list(data_dir.rglob("users-*.db"))
    if not paths:
        raise RuntimeError(f"no RocksDB table under {data_dir}")
    for path in paths:
        db = Rdict(str(path))
        try:
            db.delete(Store.offset_key)
        finally:
            db.close()


async def run_e2e(
    bootstrap: str, sizes: Sizes, workdir: Path, *, budget_s: float = 300.0
) -> E2EResults:
    """All phases in order; each phase's processes are stopped before the next starts."""
    run_id = f"bench{int(time.time())}"
    res = E2EResults()
    # A failed phase is reported as such; the others still run (baselines stay useful).
    async with _phase(res, "throughput"):
        await throughput(run_id, workdir, bootstrap, sizes, res, budget_s)
    if res.worker is not None:
        rate = res.worker.per_second / 2
        async with _phase(res, "latency"):
            res.latency = await latency(
                Phase(run_id, "lat", workdir / "lat"), bootstrap, sizes, rate, budget_s
            )
        # The same load without the event-time grace: how much of the latency is ordering.
        async with _phase(res, "latency, CHURNSTREAM_ORDER_GRACE_S=0"):
            res.latency_variants["CHURNSTREAM_ORDER_GRACE_S=0"] = await latency(
                Phase(run_id, "latfast", workdir / "latfast"),
                bootstrap,
                sizes,
                rate,
                budget_s,
                CHURNSTREAM_ORDER_GRACE_S="0",
            )
    else:
        res.errors["latency"] = "not run: the worker's throughput was not measured"
    async with _phase(res, "scale"):
        await scale(run_id, workdir, bootstrap, sizes, res, budget_s)
    async with _phase(res, "restart"):
        await restart(run_id, workdir, bootstrap, sizes, res, budget_s)
    return res


@contextlib.asynccontextmanager
async def _phase(res: E2EResults, name: str) -> Any:
    try:
        yield
    except Exception as exc:
        log.exception("phase %s failed", name)
        res.errors[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
