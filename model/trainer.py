"""The single trainer: learns every labelled example and decides when to publish a snapshot.

Learning is centralised (one trainer reads the one-partition `churn.examples` topic) and scoring
is partitioned (every worker scores with the latest snapshot it received). Quality is measured
prequentially: each example is scored by the current model BEFORE the model learns from it.

The trainer's partition can move to another worker (a rebalance). The new owner `restore`s the
newest readable published snapshot of every segment before it learns, and its versions continue
above every version ever published, so a `model_version` never goes back. A worker that crashed
between sending examples and committing its inputs sends them again with new offsets; each
example's id (`example_id`) is remembered, in the snapshot too, so a copy is not learned twice.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from churnstream.features.names import SEGMENT_FEATURES
from churnstream.model.config import ModelConfig
from churnstream.model.labels import Example
from churnstream.model.learner import SegmentModel
from churnstream.model.quality import SegmentQuality
from churnstream.model.snapshot_signing import SnapshotCheck, SnapshotRefused
from churnstream.stream.contract.events import SEGMENTS

# Ids of the last examples learned per segment: a redelivery after a worker crash re-sends at
# most what it sent since its last commit (a few flushes), far fewer. 8 bytes each in a snapshot.
REMEMBER_IDS = 20_000


def example_id(example: Example) -> int:
    """The example's identity: one prediction per user, segment and day, so (user, segment,
    made_at) names it; the same on every copy a worker sends again."""
    key = f"{example.user_id}\x1f{example.segment}\x1f{example.made_at!r}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


@dataclass(frozen=True, slots=True)
class Learned:
    segment: str
    snapshot_due: bool
    drift: bool
    duplicate: bool = False  # already learned (a redelivered copy): nothing changed


@dataclass(frozen=True, slots=True)
class Restored:
    model: SegmentModel
    skipped: int  # newer snapshots that could not be read
    reasons: tuple[str, ...] = ()  # why each was refused (model.snapshot_signing.REASONS)


class Trainer:
    def __init__(
        self,
        config: ModelConfig,
        feature_names: Sequence[str],
        snapshot_every: int = 500,
        remember: int = REMEMBER_IDS,
        check: SnapshotCheck | None = None,
    ) -> None:
        self.config = config
        self.feature_names = tuple(feature_names)
        # How published snapshots are loaded (signature, features); default: any document.
        self.check = check or SnapshotCheck(allow_pickle=config.trust_pickled_snapshots)
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
        self._remember = remember
        self._ids = {seg: deque[int](maxlen=remember) for seg in SEGMENTS}
        self._id_set: dict[str, set[int]] = {seg: set() for seg in SEGMENTS}

    def _fresh(self, segment: str) -> SegmentModel:
        return SegmentModel(
            segment,
            estimator=self.config.estimator,
            base_rate=self.config.base_rates[segment],
            feature_names=SEGMENT_FEATURES.get(segment, self.feature_names),
            seed=self.config.seed,
            clip_z=self.config.clip_z,
            optimizer=self.config.optimizer,
            learning_rate=self.config.learning_rate,
            l2=self.config.l2,
            regime_cuts=self.config.regime_cuts,
        )

    def restore(self, segment: str, published: Sequence[bytes], floor: int = 0) -> Restored:
        """Continue `segment` from the newest readable of its `published` snapshots (newest
        first), or from a fresh model if none can be read; `floor` is the highest version ever
        published (read from the records' headers, readable even when a snapshot is not).

        The published snapshot replaces whatever this trainer learned itself: what it learned
        but never published was not acked either, so it comes again from the committed offset.
        """
        reasons: list[str] = []
        model = None
        for data in published:
            try:
                model = self.check.load(data, segment)
                break
            except SnapshotRefused as e:  # unreadable, unsigned, foreign: skipped
                reasons.append(e.reason)
        self._take(segment, model or self._fresh(segment), floor)
        return Restored(self.models[segment], len(reasons), tuple(reasons))

    def adopt(self, segment: str, data: bytes, floor: int) -> bool:
        """Continue `segment` from a snapshot an operator published (`model import`,
        `model rollback`, a backfill) in place of this trainer's model; `floor` is the highest
        version this trainer knows published. Raises `SnapshotRefused` (the model stays).

        What this trainer learned and did not publish is dropped, like the versions the
        operator went back from; the labels it had covered stay covered (`labels_until`), so
        workers do not wait for a snapshot of labels that will not be learned again.
        True if the snapshot's version is not above `floor`: a snapshot published after it
        hides it from the workers, so it takes the version above the floor and must be
        published again (workers install only a higher version)."""
        model = self.check.load(data, segment)
        behind = model.version <= floor
        model.labels_until = max(model.labels_until, self.models[segment].labels_until)
        model.learned_until = max(model.learned_until, self.models[segment].learned_until)
        self._take(segment, model, floor + 1 if behind else floor)
        return behind

    def _take(self, segment: str, model: SegmentModel, floor: int) -> None:
        # Strictly above every published version, also one we could not read.
        model.version = max(model.version, floor)
        self.models[segment] = model
        self._since_snapshot[segment] = 0
        self._ready[segment] = self.config.ready(model)
        self._ids[segment] = deque(model.learned_ids, maxlen=self._remember)
        self._id_set[segment] = set(self._ids[segment])

    def learn(self, example: Example) -> Learned:
        seg = example.segment
        ident = example_id(example)
        if ident in self._id_set[seg]:
            return Learned(seg, False, False, duplicate=True)
        ids = self._ids[seg]
        if len(ids) == ids.maxlen:
            self._id_set[seg].discard(ids[0])
        ids.append(ident)
        self._id_set[seg].add(ident)
        model = self.models[seg]
        due = example.made_at + self.config.label_delay_s(seg)
        model.learned_until = max(model.learned_until, due)
        x = dict(zip(self.feature_names, example.features, strict=False))
        # Scored before it learns (progressive validation); the quality reads the score only.
        drift = self.quality[seg].update(model.predict_then_learn(x, example.label), example.label)
        if drift and self.config.drift_action == "reset":
            model.reset()
            self.quality[seg].reset_drift()
        self._since_snapshot[seg] += 1
        ready = self.config.ready(model)
        # Also publish the moment the model becomes ready, so scoring switches without delay.
        due = self._since_snapshot[seg] >= self.snapshot_every or (ready and not self._ready[seg])
        self._ready[seg] = ready
        if due:
            self._since_snapshot[seg] = 0
        return Learned(seg, due, drift)

    def close(self, example: Example) -> bool:
        """`example`, learned, was the last of the labels a worker released together (all due
        before one watermark): the model now covers their due time (made_at + horizon, + the
        quiet days of a `quiet` label: when model.labels releases a label). Many labels share a
        due time, so no single one can.
        True if that moved `labels_until`: workers wait for such a snapshot (model.scoring)."""
        model = self.models[example.segment]
        due = example.made_at + self.config.label_delay_s(example.segment)
        moved = due > model.labels_until
        model.labels_until = max(model.labels_until, due)
        return moved

    def snapshot(self, segment: str) -> bytes:
        model = self.models[segment]
        model.learned_ids = tuple(self._ids[segment])
        return model.snapshot()
