"""Scoring a user: the segment's model once it is ready, the transparent rules score before."""

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
        self.models: dict[str, SegmentModel] = {}
        self._rules: dict[str, RulesScore] = {}

    def install(self, model: SegmentModel) -> bool:
        """Use `model` for its segment unless an equal or newer version is installed already."""
        current = self.models.get(model.segment)
        if current is not None and current.version >= model.version:
            return False
        self.models[model.segment] = model
        return True

    def install_snapshot(self, data: bytes) -> SegmentModel:
        model = SegmentModel.from_snapshot(data)
        self.install(model)
        return model

    def rules(self, segment: str) -> RulesScore:
        rules = self._rules.get(segment)
        if rules is None:
            rules = self._rules[segment] = self.config.rules_for(segment)
        return rules

    def score(self, segment: str, x: Mapping[str, float]) -> Score:
        model = self.models.get(segment)
        if model is not None and model.ready(self.config.min_labels):
            drivers = model.explain(x)
            return Score(model.predict(x), "model", model.version, drivers)
        rules = self.rules(segment)
        return Score(rules.predict(x), "rules", 0, rules.explain(x))
