"""Scoring a user: the segment's model once it is ready, the transparent rules score before.

Model as of a decision: every snapshot records `labels_until`, the due time (event time) up to
which it learned every label a worker released, and `learned_until`, the latest due time of any
label it learned. A daily row at boundary D is scored with the newest snapshot that learned no
label due at or after D (`score(..., as_of=D)`), and the engine holds the rows of D until an
installed snapshot has learned every label released before D (`covers`), so the live worker,
whose snapshots arrive in wall time, uses the same model as a replay, whose trainer runs inline.
Both are needed live: while D's rows are spread over sweeps the labels due on D's day go out,
and the trainer may publish before that release is complete (every `snapshot_every` examples),
a snapshot whose `labels_until` is still before D but which learned past it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from churnstream.model.config import ModelConfig
from churnstream.model.explain import Driver
from churnstream.model.learner import SegmentModel
from churnstream.model.rules import RulesScore


@dataclass(frozen=True, slots=True)
class Score:
    score: float
    source: str  # "model" | "rules"
    model_version: int
    drivers: list[Driver]


class Scorer:
    """Holds the latest model snapshot per segment; swapping one in needs no restart.

    Owned by one task (River objects are not thread-safe): the live worker installs snapshots
    from the same event loop that scores.
    """

    def __init__(self, config: ModelConfig, feature_names: Sequence[str]) -> None:
        self.config = config
        self.feature_names: tuple[str, ...] = tuple(feature_names)
        self.models: dict[str, SegmentModel] = {}  # newest per segment (event scores)
        # Snapshots still selectable as of a later boundary, oldest first, per segment.
        self._history: dict[str, list[SegmentModel]] = {}
        self._rules: dict[str, RulesScore] = {}

    def install(self, model: SegmentModel) -> bool:
        """Use `model` for its segment unless an equal or newer version is installed already."""
        current = self.models.get(model.segment)
        if current is not None and current.version >= model.version:
            return False
        self.models[model.segment] = model
        self._history.setdefault(model.segment, []).append(model)
        return True

    def covers(self, released: Mapping[str, float]) -> bool:
        """True if, per segment, an installed snapshot learned labels due up to `released`."""
        for segment, until in released.items():
            model = self.models.get(segment)
            if model is None or model.labels_until < until:
                return False
        return True

    def as_of(self, segment: str, ts: float) -> SegmentModel | None:
        """The newest snapshot that learned no label due at or after `ts` (the oldest kept if
        none: another worker's labels made every snapshot newer). Boundaries only grow, so
        older snapshots are dropped once a newer one qualifies."""
        history = self._history.get(segment)
        if not history:
            return None
        n = sum(1 for m in history if max(m.labels_until, m.learned_until) < ts)
        if n > 1:
            del history[: n - 1]
        return history[0]

    def install_snapshot(self, data: bytes) -> SegmentModel:
        model = SegmentModel.from_snapshot(data, allow_pickle=self.config.trust_pickled_snapshots)
        self.install(model)
        return model

    def rules(self, segment: str) -> RulesScore:
        rules = self._rules.get(segment)
        if rules is None:
            rules = self._rules[segment] = self.config.rules_for(segment)
        return rules

    def score(self, segment: str, x: Mapping[str, float], as_of: float | None = None) -> Score:
        """Score with the newest model, or with the model as of `as_of` (a daily boundary)."""
        return self.score_with(self.pick(segment, as_of), segment, x)

    def pick(self, segment: str, as_of: float | None = None) -> SegmentModel | None:
        """The model `score` would use now (None: none installed). An installed snapshot is
        never changed, so `score_with` it later gives the score of now."""
        return self.models.get(segment) if as_of is None else self.as_of(segment, as_of)

    def score_with(self, model: SegmentModel | None, segment: str, x: Mapping[str, float]) -> Score:
        """The score of `x` with `model` if it is ready, else with the segment's rules."""
        if model is not None and self.config.ready(model):
            # No additive explanation (a tree, or a recency regime that has learned nothing
            # yet and scores the prior): the rules name the drivers.
            drivers = model.explain(x) or self.rules(segment).explain(x)
            return Score(model.predict(x), "model", model.version, drivers)
        rules = self.rules(segment)
        return Score(rules.predict(x), "rules", 0, rules.explain(x))
