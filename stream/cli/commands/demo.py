"""`churnstream demo` (`make demo`): broker, topics, a worker, simulated customers, live alerts.

Everything runs on this machine: the broker is the local (or Docker, or configured) one, the
worker is a real `churnstream worker` subprocess, the simulator produces to Kafka at a pace a
person can follow, and alerts are printed as they arrive. Ctrl-C stops it all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from churnstream.stream.cli.common import CommandError
from churnstream.stream.cli.formatting import format_record
from churnstream.stream.contract import topics as t
from churnstream.stream.contract.events import DAY_S
from churnstream.stream.devtools.kafka_local import default_home, free_port
from churnstream.stream.devtools.processes import ManagedProcess, start_worker, worker_env
from churnstream.stream.devtools.simulator import SimConfig, generate, ground_truth
from churnstream.stream.devtools.simulator.kafka_sink import send_records
from churnstream.stream.devtools.simulator.truth import churned_within
from churnstream.stream.kafka.admin import create_topics
from churnstream.stream.kafka.broker import resolve_bootstrap
from churnstream.stream.kafka.client import client_options
from churnstream.stream.settings import Settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on simulated customers, alerts live")
    p.add_argument("--users", type=int, default=1000, help="simulated customers")
    p.add_argument("--days", type=int, default=60, help="days of event time simulated")
    p.add_argument("--rate", type=float, default=3000.0, help="events per wall second")
    p.add_argument("--seed", type=int, default=7, help="random seed of the simulation")
    p.add_argument("--max-seconds", type=float, default=170.0, help="stop after this long")
    p.add_argument("--per-second", type=float, default=3.0, help="alert lines printed per second")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    # The demo's own lines are the output: library chatter (here and in the worker's log) only
    # when something is wrong, unless a log level was asked for on the command line.
    if args.log_level is None:
        logging.getLogger().setLevel(logging.WARNING)
        settings = settings.replace(log_level="warning")
    env = {"KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers}
    print("starting Kafka ...", flush=True)
    broker = resolve_bootstrap(env, home=default_home())
    print(f"Kafka ({broker.kind}) at {broker.bootstrap}")
    try:
        return asyncio.run(_demo(args, settings, broker.bootstrap))
    except KeyboardInterrupt:
        print("\nstopped")
        return 130
    finally:
        if broker.stop is not None:
            print("stopping Kafka ...", flush=True)
            broker.stop()


async def _demo(args: argparse.Namespace, base: Settings, bootstrap: str) -> int:
    run_id = f"demo{int(time.time())}"
    workdir = Path(tempfile.mkdtemp(prefix="churnstream-demo-"))
    # The configured metrics port (9464 unless set) is the one deploy/prometheus/prometheus.yml
    # scrapes, so a Prometheus started from it (compose or Debian's package) shows the demo.
    metrics_port, web_port = _port_or_free(base.metrics_port), free_port()
    if metrics_port != base.metrics_port:
        print(
            f"metrics port {base.metrics_port} is taken: using {metrics_port}, which "
            "deploy/prometheus/prometheus.yml does not scrape"
        )
    settings = base.replace(
        bootstrap_servers=bootstrap,
        topic_prefix=f"{run_id}.",
        app_id=run_id,
        data_dir=workdir / "data",
        metrics_port=metrics_port,
        web_port=web_port,
        # A few months of event time pass in minutes: learn from fewer labels than in production.
        min_labels=100,
        snapshot_every=100,
    )
    await create_topics(settings, bootstrap=bootstrap)
    worker = _start_worker(settings, workdir)
    config = SimConfig(users=args.users, days=args.days, seed=args.seed)
    truth = ground_truth(config)
    print(
        f"worker pid {worker.pid}; metrics http://127.0.0.1:{metrics_port}/metrics; "
        f"read API http://127.0.0.1:{web_port}/users/<user_id>/"
    )
    print(
        f"simulating {args.users} customers over {args.days} days of event time "
        f"at {args.rate:,.0f} events/s; alerts appear below (Ctrl-C to stop)\n"
    )
    alerts: list[dict[str, Any]] = []
    deadline = time.monotonic() + args.max_seconds
    producer = asyncio.create_task(
        _produce_paced(config, settings, bootstrap, args.rate, metrics_port, deadline)
    )
    watcher = asyncio.create_task(_watch_alerts(settings, bootstrap, alerts, args.per_second))
    try:
        while time.monotonic() < deadline and not producer.done():
            await asyncio.sleep(0.5)
            if not worker.running():
                raise CommandError(f"the worker exited ({worker.popen.returncode}); see {workdir}")
        sent = await producer if producer.done() else None
        if sent is None:
            print("time is up: stopping the simulation here", flush=True)
        # Let the worker catch up on what was sent, within the time budget.
        await _drain(settings, bootstrap, deadline + 20.0)
    finally:
        producer.cancel()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
        worker.stop()
    _summary(alerts, truth, sent, metrics_port)
    return 0


def _port_or_free(port: int) -> int:
    """`port` if it can be bound on 127.0.0.1 now, else a free one."""
    if port <= 0:
        return free_port()
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


async def _produce_paced(
    config: SimConfig,
    settings: Settings,
    bootstrap: str,
    rate: float,
    port: int,
    deadline: float,
    max_behind: int = 15_000,
) -> int:
    """Send the simulation in chunks, never more than `max_behind` records ahead of the worker,
    so that what is printed is live whatever the speed of this machine."""
    records = generate(config)
    sent = 0
    while time.monotonic() < deadline:
        chunk = list(itertools.islice(records, 3000))
        if not chunk:
            break
        sent += await send_records(
            chunk, bootstrap, rate=rate, progress=None, topic_name=settings.topic
        )
        while time.monotonic() < deadline and _consumed(port) < sent - max_behind:
            await asyncio.sleep(0.25)
    return sent


def _consumed(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("churnstream_records_consumed_total{")
    )


def _start_worker(settings: Settings, workdir: Path) -> ManagedProcess:
    env = worker_env(
        os.environ,
        settings.bootstrap_servers,
        topic_prefix=settings.topic_prefix,
        app_id=settings.app_id,
        data_dir=settings.data_dir,
        metrics_port=settings.metrics_port,
        web_port=settings.web_port,
        min_labels=settings.min_labels,
        snapshot_every=settings.snapshot_every,
    )
    return start_worker(env, workdir / "worker.log", log_level=settings.log_level)


async def _watch_alerts(
    settings: Settings, bootstrap: str, alerts: list[dict[str, Any]], per_second: float
) -> None:
    """Print alerts as they arrive, at most `per_second` lines a second so a person can read
    them (the rest are counted), with a status line every 10 s."""
    topic = settings.topic(t.ALERTS)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        **client_options(settings),
    )
    await consumer.start()
    color = sys.stdout.isatty()
    next_line = next_status = time.monotonic()
    skipped = 0
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            now = time.monotonic()
            for records in batch.values():
                for record in records:
                    alert = orjson.loads(record.value)
                    alerts.append(alert)
                    if now >= next_line:
                        print(format_record(topic, record.value, color=color), flush=True)
                        next_line = now + 1.0 / per_second
                    else:
                        skipped += 1
            if now >= next_status:
                if alerts:
                    kinds = Counter(a["kind"] for a in alerts)
                    print(
                        f"  -- event time {alerts[-1]['ts'][:10]}: "
                        f"{kinds['churn_risk']} churn_risk, {kinds['roi_drop']} roi_drop "
                        f"alerts so far ({skipped} not printed)",
                        flush=True,
                    )
                next_status = now + 10.0
    finally:
        await consumer.stop()


async def _drain(settings: Settings, bootstrap: str, deadline: float) -> None:
    """Wait until the worker's group has committed up to the end of every input topic."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options(settings))
    await admin.start()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, **client_options(settings)
    )
    await consumer.start()
    try:
        names = [settings.topic(n) for n in t.INPUT_TOPICS.values()]
        while time.monotonic() < deadline:
            offsets = await admin.list_consumer_group_offsets(settings.app_id)
            tps = [tp for tp in offsets if tp.topic in names]
            if tps:
                ends = await consumer.end_offsets(tps)
                behind = sum(ends[tp] - offsets[tp].offset for tp in tps)
                if behind <= 0:
                    return
                print(f"  worker catching up: {behind:,} records behind", flush=True)
            await asyncio.sleep(2.0)
    finally:
        await consumer.stop()
        await admin.close()


def _summary(alerts: list[dict[str, Any]], truth: Any, sent: int | None, port: int) -> None:
    """What a customer-success team would ask of the alerts, judged by the simulator's truth
    the way the replay report judges them: within each segment's horizon, by its label mode
    (a course learner who silently stops counts as churned, not only one who cancels)."""
    risk = [a for a in alerts if a["kind"] == "churn_risk"]
    roi = [a for a in alerts if a["kind"] == "roi_drop"]
    hits = 0
    first: dict[str, float] = {}
    for a in risk:
        user = truth.users.get(a["user_id"])
        ts = _ts(a["ts"])
        first.setdefault(a["user_id"], ts)
        if user is not None and churned_within(
            user, ts, truth.horizon_days[user.segment] * DAY_S, truth.label_modes[user.segment]
        ):
            hits += 1
    churners = {
        uid: u
        for uid, u in truth.users.items()
        if u.churn_ts is not None
        and (u.churn_kind == "cancel" or truth.label_modes[u.segment] != "cancel")
    }
    leads = [
        (u.churn_ts - first[uid]) / DAY_S
        for uid, u in churners.items()
        if uid in first and first[uid] < u.churn_ts
    ]
    silent = [u for u in churners.values() if u.churn_kind == "silent"]
    silent_soon = [
        uid
        for uid, u in churners.items()
        if u.churn_kind == "silent" and uid in first and first[uid] - u.churn_ts <= 3 * DAY_S
    ]
    print("\n=== summary ===")
    if sent is not None:
        print(f"events sent: {sent:,}")
    print(f"alerts: {len(risk)} churn_risk, {len(roi)} roi_drop")
    if risk:
        print(
            f"churn_risk alerts followed by churn within the segment's horizon: "
            f"{hits}/{len(risk)} ({hits / len(risk):.0%})"
        )
    print(
        f"churners in the simulation: {len(churners)} ({len(silent)} stopped without cancelling); "
        f"alerted before churning: {len(leads)}"
    )
    if leads:
        print(f"median lead time: {statistics.median(leads):.1f} days before the churn")
    if silent:
        print(
            f"silent dropouts alerted by 3 days after their last activity: "
            f"{len(silent_soon)}/{len(silent)}"
        )
    print(f"metrics were served at http://127.0.0.1:{port}/metrics (Prometheus/Grafana: README)")


def _ts(value: Any) -> float:
    from churnstream.stream.contract.validation import parse_ts

    ts = parse_ts(value)
    return ts if ts is not None else 0.0
