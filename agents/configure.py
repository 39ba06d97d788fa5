"""Settings -> the domain configs of features, model and alerts (one mapping, used live and in
replay, so both run with identical parameters)."""

from __future__ import annotations

import dataclasses
from typing import Any

from churnstream.features import FeatureConfig
from churnstream.model.alert_config import AlertConfigError, load_alert_config
from churnstream.model.alerts import AlertConfig, AlertPolicy
from churnstream.model.config import ModelConfig
from churnstream.model.engine import EngineConfig
from churnstream.model.partitioned import PartitionedReplay
from churnstream.model.partitioned import supported as partition_supported
from churnstream.model.playbook import Playbook
from churnstream.model.replay import Replay
from churnstream.stream.contract.events import DAY_S, expected_kinds
from churnstream.stream.settings import Settings, SettingsError


def model_config(settings: Settings) -> ModelConfig:
    return ModelConfig(
        estimator=settings.estimator,
        trust_pickled_snapshots=settings.trust_pickled_snapshots,
        min_labels=settings.min_labels,
        min_class_labels=settings.min_class_labels,
        horizons_days={
            "course": settings.horizon_course_days,
            "saas": settings.horizon_saas_days,
            "docs": settings.horizon_docs_days,
        },
        label_modes={
            "course": settings.label_course,  # type: ignore[dict-item]  # validated
            "saas": settings.label_saas,  # type: ignore[dict-item]
            "docs": settings.label_docs,  # type: ignore[dict-item]
        },
        quiet_days=settings.label_quiet_days,
    )


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        features=FeatureConfig(lateness_s=settings.lateness_s),
        model=model_config(settings),
        default_segment=settings.default_segment,
        score_min_interval_s=settings.score_min_interval_s,
        scoring=settings.scoring,
        score_events=settings.score_events,
        day_offset_s=settings.day_offset_s,
        gone_after_s=settings.gone_after_days * DAY_S,
        expire_after_s=settings.user_retention_days * DAY_S or None,
        watermark_max_step_s=settings.watermark_max_step_s,
        expect_kinds=expected_kinds(settings.deployed_segments),
    )


# Daily rows per batch or timer turn, at most: a boundary of 100k users is spread over many
# turns instead of holding intake ~10 s at once.
DAILY_ROWS_PER_SWEEP = 2000
# ... and at most this long making them (wall time; the turn's commit costs a few times more):
# an event waits behind one such turn at most, since the timer makes no more while input waits
# (agents/batch_loop.py). Rows are as of their boundary, so their pace changes none of them.
DAILY_ROWS_BUDGET_S = 0.02


def live_engine_config(settings: Settings) -> EngineConfig:
    """The worker's: its sources may lag or not have started (waited for, up to
    `source_wait_s`), a trainer learns its labels (rows wait for the model as of their day,
    up to `model_wait_s`; see model/watermark.py and model/scoring.py), and a boundary's rows
    are spread over batches (the same rows as at once; model/engine.py `_catch_up`)."""
    return dataclasses.replace(
        engine_config(settings),
        wait_for_sources=True,
        model_as_of=True,
        daily_rows_per_sweep=DAILY_ROWS_PER_SWEEP,
    )


def alert_policy(settings: Settings) -> AlertPolicy:
    playbook = Playbook.load(settings.playbook_path or None)
    config = AlertConfig(cooldown_s=settings.alert_cooldown_days * DAY_S)
    if not settings.alerts_config:
        return AlertPolicy(config, playbook)
    try:
        setup = load_alert_config(settings.alerts_config, config)
    except AlertConfigError as exc:
        raise SettingsError(f"CHURNSTREAM_ALERTS_CONFIG: {exc}") from None
    return AlertPolicy(setup.config, playbook, setup.experiment)


def replay(settings: Settings, *, by_user: bool = False, **kw: Any) -> Replay:
    """The replay `churnstream replay` and `backfill` run: the worker's parameters, record
    size limit and snapshot cadence; `kw` as `Replay` takes them (outputs, truth, clock).
    `by_user`: the users partitioned over `jobs` processes (model/partitioned.py), the same
    results; not with a daily alert budget (then as without it)."""
    alerts = alert_policy(settings)
    cls = PartitionedReplay if by_user and partition_supported(alerts) else Replay
    return cls(
        engine_config(settings),
        alerts,
        max_bytes=settings.max_record_bytes,
        snapshot_every=settings.snapshot_every,
        **kw,
    )
