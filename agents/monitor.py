"""Worker health: the Prometheus endpoint, consumer lag and state size gauges."""

from __future__ import annotations

import logging
from typing import Any

from churnstream.agents.context import WorkerContext
from churnstream.agents.faust_private import committed_offsets, store_stats
from churnstream.agents.metrics import Closeable, start_metrics_server

log = logging.getLogger(__name__)

LAG_INTERVAL_S = 5.0


def register(ctx: WorkerContext) -> None:
    app, settings, metrics = ctx.app, ctx.settings, ctx.metrics
    server: list[Closeable] = []

    @app.task
    async def serve_metrics() -> None:
        if settings.metrics_port and not server:
            server.append(start_metrics_server(settings.metrics_host, settings.metrics_port))
            log.info(
                "metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port
            )

    @app.timer(LAG_INTERVAL_S)
    async def measure() -> None:
        consumer: Any = app.consumer
        tps = [tp for tp in consumer.assignment() if tp.topic in ctx.inputs.topics]
        try:
            if tps:
                ends = await consumer.highwaters(*tps)
                committed = committed_offsets(consumer)
                for tp in tps:
                    done = committed.get(tp)
                    if done is None:
                        done = await consumer.position(tp) or 0
                    metrics.lag(tp.topic, tp.partition).set(max(0, (ends.get(tp) or 0) - done))
        except Exception as exc:  # an exception in a Faust timer would stop the worker
            # e.g. a rebalance revoked a partition between the two calls; measure next time.
            log.debug("consumer lag not measured this round: %r", exc)
        # From the store's own counts: copying every stored value every few seconds would read
        # the whole RocksDB database.
        users, size = store_stats(ctx.table.data)
        metrics.set_state(users=users, size_bytes=size, pending_snapshots=len(ctx.detector.due))
