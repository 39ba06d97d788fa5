"""The single trainer: learns every labelled example and decides when to publish a snapshot.

Learning is centralised (one trainer reads the one-partition `churn.examples` topic) and scoring
is partitioned (every worker scores with the latest snapshot it received). Quality is measured
prequentially: each example is scored by the current model BEFORE the model learns from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from churnstream.features.names import SEGMENT_FEATURES
from churnstream.model.config import ModelConfig
from churnstream.model.labels import Example
from churnstream.model.learner import SegmentModel
from churnstream.model.quality import SegmentQuality
from churnstream.stream.contract.events import SEGMENTS


@dataclass(frozen=True, slots=True)
class Learned:
    segment: str
    snapshot_due: bool
    drift: bool


class Trainer:
    def __init__(
        self, config: ModelConfig, feature_names: Sequence[str], snapshot_every: int = 500
    ) -> None:
        self.config = config
        self.feature_names = tuple(feature_names)
        self.snapshot_every = snapshot_every
        self.models = {seg: self._fresh(seg) for seg in SEGMENTS}
        self.quality = {
            seg: SegmentQuality(
                window=config.quality_window,
                drift_warmup=config.drift_warmup,
                drift_delta=config.drift_delta,
            )
            for seg in SEGMENTS
        }
        self._since_snapshot = dict.fromkeys(SEGMENTS, 0)
        self._ready = dict.fromkeys(SEGMENTS, False)

    def _fresh(self, segment: str) -> SegmentModel:
        return SegmentModel(
            segment,
            estimator=self.config.estimator,
            base_rate=self.config.base_rates[segment],
            feature_names=SEGMENT_FEATURES.get(segment, self.feature_names),
            seed=self.config.seed,
            clip_z=self.config.clip_z,
        )

    def restore(self, snapshot: bytes) -> SegmentModel:
        """Continue from a published snapshot (trainer restart)."""
        model = SegmentModel.from_snapshot(snapshot)
        if model.segment in self.models and model.version >= self.models[model.segment].version:
            self.models[model.segment] = model
        return model

    def learn(self, example: Example) -> Learned:
        seg = example.segment
        model = self.models[seg]
        x = dict(zip(self.feature_names, example.features, strict=False))
        drift = self.quality[seg].update(model.predict(x), example.label)
        model.learn(x, example.label)
        if drift and self.config.drift_action == "reset":
            model.reset()
            self.quality[seg].reset_drift()
        self._since_snapshot[seg] += 1
        ready = model.ready(self.config.min_labels)
        # Also publish the moment the model becomes ready, so scoring switches without delay.
        due = self._since_snapshot[seg] >= self.snapshot_every or (ready and not self._ready[seg])
        self._ready[seg] = ready
        if due:
            self._since_snapshot[seg] = 0
        return Learned(seg, due, drift)

    def close(self, example: Example) -> None:
        """`example`, learned, was the last of the labels a worker released together (all due
        before one watermark): the model now covers their due time (made_at + horizon, when
        model.labels releases a label). Many labels share a due time, so no single one can."""
        model = self.models[example.segment]
        due = example.made_at + self.config.horizon_s(example.segment)
        model.labels_until = max(model.labels_until, due)

    def snapshot(self, segment: str) -> bytes:
        return self.models[segment].snapshot()
