"""The main agent: contract topics in; DLQ, re-keying, features, scores, labels and alerts out.

Thin wiring of the parts, which hold the logic:
- agents/intake.py: batches straight from the agent's channel queue;
- agents/batch_loop.py (`BatchLoop`): per batch, admit each record once in offset order
  (agents/input_guard.py), validate or re-key it and apply released events in event-time order
  (agents/processor.py, agents/ordering.py);
- agents/checkpoint.py (`Checkpoint`): the commit protocol, send outputs and changelog ->
  broker acknowledges -> write the store -> mark records done (agents/acks.py) -> commit
  offsets (agents/commits.py); nothing is acked until its effects are written.
`GET /status/` on the worker's web port says which input source or model it waits for.
Concurrency stays 1: Faust can commit past in-flight records with more (faust-streaming #606).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from functools import partial
from typing import Any

from faust.web import Request, Response, View

from churnstream.agents import faust_private
from churnstream.agents.acks import AckLedger
from churnstream.agents.batch_loop import BatchLoop
from churnstream.agents.checkpoint import Checkpoint
from churnstream.agents.commits import OffsetCommitter
from churnstream.agents.context import WorkerContext
from churnstream.agents.input_guard import InputGuard
from churnstream.agents.intake import batches
from churnstream.agents.ordering import EventTimeAligner
from churnstream.agents.outputs import OutputRefused
from churnstream.agents.processor import EventProcessor
from churnstream.agents.web_access import authorized, web_token

log = logging.getLogger(__name__)

RELEASE_INTERVAL_S = 0.1


def stop_worker(ctx: WorkerContext, exc: OutputRefused) -> None:
    """Outputs the broker will never take: retrying would hold the inputs forever in silence,
    so say why once and stop the worker the way SIGTERM does (nothing of the batch is acked).
    `churnstream worker` then exits non-zero with the reason (`ctx.fatal`)."""
    log.critical("stopping the worker: %s", exc)
    ctx.fatal = str(exc)
    os.kill(os.getpid(), signal.SIGTERM)


def register(ctx: WorkerContext) -> None:
    app, settings, metrics = ctx.app, ctx.settings, ctx.metrics
    processor = EventProcessor(settings, metrics, ctx.detector, ctx.repo)
    guard = InputGuard(app, settings, ctx.bootstrap, metrics, processor.rank)
    faust_private.keep_rewinds(app.consumer)
    ledger = AckLedger()
    # Through the consumer at commit time: Faust creates it lazily.
    committer = OffsetCommitter(lambda offsets: faust_private.commit_offsets(app.consumer, offsets))
    outputs = ctx.outputs
    loop = BatchLoop(
        guard=guard,
        processor=processor,
        aligner=EventTimeAligner(grace_s=settings.order_grace_s),
        ledger=ledger,
        committer=committer,
        checkpoints=partial(
            Checkpoint, outputs, ctx.repo, ledger, committer, metrics.observe_flush
        ),
        rank=processor.rank,
        metrics=metrics,
        lock=ctx.state_lock,
    )
    app.on_before_shutdown.connect(lambda *_, **__: guard.close())
    app.on_before_shutdown.connect(lambda *_, **__: committer.commit(force=True))
    app.on_before_shutdown.connect(lambda *_, **__: outputs.stop())
    running: list[bool] = []

    @app.agent(ctx.inputs, name="churnstream-process", concurrency=1)
    async def process(stream: Any) -> None:
        metrics.worker_up.set(1)
        running[:] = [True]
        queue = stream.channel.queue
        loop.backlog = queue.qsize  # the timer's rows wait while records are queued
        try:
            async for batch in batches(queue, settings.flush_max_events, settings.flush_interval_s):
                await loop.run(batch)
        except OutputRefused as exc:
            running.clear()
            stop_worker(ctx, exc)

    @app.page("/status/")
    class Status(View):
        """What this worker's decisions wait for (`churnstream tail --status` shows it)."""

        @authorized(web_token(settings))
        async def get(self, request: Request) -> Response:
            return self.json(loop.status(time.monotonic()))

    @app.timer(RELEASE_INTERVAL_S)
    async def release_held() -> None:
        """Held events must not wait for the next record: once their sources caught up or their
        hold time is over they go out, also when no record arrives any more."""
        if running:
            try:
                await loop.tick()
            except OutputRefused as exc:
                running.clear()
                stop_worker(ctx, exc)
