"""Faust agents: thin wiring of the pure detector (model.engine) to topics and tables."""

from __future__ import annotations

import faust

from churnstream.stream.settings import Settings


def register(app: faust.App, settings: Settings, bootstrap: str) -> None:
    """Register every agent, task and view of a churnstream worker on `app`."""
    from churnstream.agents import erasure, model_feed, monitor, process, trainer, views
    from churnstream.agents.context import WorkerContext

    ctx = WorkerContext.build(app, settings, bootstrap)
    process.register(ctx)
    erasure.register(ctx)
    trainer.register(ctx)
    model_feed.register(ctx)
    views.register(ctx)
    monitor.register(ctx)
    app.churnstream = ctx  # type: ignore[attr-defined]
