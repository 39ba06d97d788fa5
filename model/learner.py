"""One online River model per segment, with cold start, snapshots and explanations."""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from river import base, compose, forest, linear_model, optim, preprocessing, tree

from churnstream.model.explain import Driver, top_drivers
from churnstream.model.rules import logit


@dataclass(frozen=True, slots=True)
class _LinearView:
    """The logistic pipeline's parameters as flat tuples, valid for one model `version`.

    `terms` (name, weight, mean, std) replay River's StandardScaler | LogisticRegression
    predict in one pass: for every feature with a non-zero variance, in `feature_names`
    order. `drivers` (name, weight, mean, sqrt(var)) are the features `explain` decomposes:
    non-zero weight and positive variance.
    """

    version: int
    intercept: float
    terms: tuple[tuple[str, float, float, Any], ...]
    drivers: tuple[tuple[str, float, float, float], ...]
    limit: float = math.inf  # ClipZ's cap of the standardised values; inf: no ClipZ step


def _river_sigmoid(z: float) -> float:
    # river.utils.math.sigmoid, which LogisticRegression uses (saturates outside +-30).
    if z < -30:
        return 0.0
    if z > 30:
        return 1.0
    return 1 / (1 + math.exp(-z))


class ClipZ(base.Transformer):
    """Caps standardised inputs at +-`limit`: the linear model never extrapolates far.

    Some features hardly vary in the labelled rows (e.g. `days_since_*` is minutes at nearly
    every scored event) but do at scoring time (a login after days away, a renewal of a quiet
    account). Unclipped, such a value is dozens of standard deviations out and one weight
    turns it into a score near 1: the flood of alerts when a young model took over.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def transform_one(self, x: dict[str, float]) -> dict[str, float]:
        c = self.limit
        return {k: (c if v > c else -c if v < -c else v) for k, v in x.items()}


OPTIMIZERS = ("sgd", "adagrad")
# The feature whose value picks a logistic model's regime (SegmentModel `regime_cuts`).
REGIME_FEATURE = "days_since_event"


def build_optimizer(name: str, learning_rate: float) -> optim.base.Optimizer:
    """The weights' optimizer by config name (the intercept has River's own constant rate)."""
    if name == "sgd":
        return optim.SGD(learning_rate)
    if name == "adagrad":
        return optim.AdaGrad(learning_rate)
    raise ValueError(f"unknown optimizer {name!r}, expected one of {OPTIMIZERS}")


def build_estimator(
    name: str,
    base_rate: float,
    seed: int = 42,
    clip_z: float = 0.0,
    optimizer: str = "sgd",
    learning_rate: float = 0.01,
    l2: float = 0.0,
) -> base.Classifier:
    """A fresh River classifier pipeline by config name.

    "logistic": StandardScaler | ClipZ | LogisticRegression with the intercept started at
    logit(base_rate), so an untrained model predicts the segment's prior instead of 0.5;
    `clip_z` <= 0 leaves ClipZ out; `optimizer`, `learning_rate` and `l2` set its weights'
    updates.
    "hoeffding" / "arf": tree models, scale-invariant so no scaler; they predict the prior
    until they have seen data (see `SegmentModel.predict`).
    """
    if name == "logistic":
        steps: list[Any] = [preprocessing.StandardScaler()]
        if clip_z > 0:
            steps.append(ClipZ(clip_z))
        steps.append(
            linear_model.LogisticRegression(
                optimizer=build_optimizer(optimizer, learning_rate),
                l2=l2,
                intercept_init=logit(base_rate),
            )
        )
        return compose.Pipeline(*steps)
    if name == "hoeffding":
        return tree.HoeffdingTreeClassifier(grace_period=100)
    if name == "arf":
        return forest.ARFClassifier(n_models=10, seed=seed)
    raise ValueError(f"unknown estimator {name!r}")


class SegmentModel:
    """Online churn classifier of one segment.

    `version` is bumped on every `learn` and never decreases (not even on `reset`), so a
    `model_version` attached to a score identifies exactly which model state produced it and
    the engine can keep the newest of two snapshots by comparing versions.

    `labels_until` is the latest label due time (event time) up to which it learned every
    label (it moves when a worker's release is complete: `Trainer.close`); `learned_until` the
    latest due time of any label it learned, also mid-release. The model as of a boundary is
    the newest one that learned no label due at or after it (model.scoring).

    Inputs are restricted to `feature_names` (missing ones count as 0.0), so a model scored
    with a full feature dict and trained from a stored vector sees the same inputs.

    `learned_ids` are the ids of the last examples learned (set by model.trainer before a
    snapshot), so the trainer that takes over does not learn a redelivered copy again.

    `regime_cuts` (logistic only): one pipeline per recency regime, picked by the row's
    `days_since_event` (cuts (1, 3): under 1 day, 1 to 3, 3 and more). A learner still active
    and one silent for days churn for different reasons; one linear model fitted both badly
    (docs/model.md). Counts and `version` are the segment's, over all regimes.
    """

    def __init__(
        self,
        segment: str,
        *,
        estimator: str = "logistic",
        base_rate: float,
        feature_names: Sequence[str],
        seed: int = 42,
        clip_z: float = 0.0,
        optimizer: str = "sgd",
        learning_rate: float = 0.01,
        l2: float = 0.0,
        regime_cuts: Sequence[float] = (),
    ) -> None:
        self.segment = segment
        self.clip_z = clip_z
        self.estimator = estimator
        self.base_rate = float(base_rate)
        self.feature_names: tuple[str, ...] = tuple(feature_names)
        self.seed = seed
        self.optimizer = optimizer
        self.learning_rate = float(learning_rate)
        self.l2 = float(l2)
        cuts = tuple(float(c) for c in regime_cuts) if estimator == "logistic" else ()
        if any(b <= a for a, b in itertools.pairwise(cuts)):
            raise ValueError(f"regime_cuts must increase, got {cuts}")
        self.regime_cuts: tuple[float, ...] = cuts
        self.version = 0
        self.n_pos = 0
        self.n_neg = 0
        self.n_resets = 0
        self.labels_until = -math.inf
        self.learned_until = -math.inf
        self.learned_ids: tuple[int, ...] = ()
        self._models = [self._build() for _ in range(len(cuts) + 1)]
        self._forget_views()

    def _build(self) -> base.Classifier:
        return build_estimator(
            self.estimator,
            self.base_rate,
            self.seed,
            self.clip_z,
            self.optimizer,
            self.learning_rate,
            self.l2,
        )

    def _forget_views(self) -> None:
        n = len(self._models)
        self._linear: list[_LinearView | None] = [None] * n
        self._linear_asked = [-1] * n  # per regime: version of the last predict without a view

    @property
    def pipelines(self) -> list[base.Classifier]:
        """The River estimator of each regime (one without `regime_cuts`)."""
        return self._models

    def regime(self, x: Mapping[str, float]) -> int:
        """Index of the regime (pipeline) that scores and learns `x`."""
        cuts = self.regime_cuts
        return bisect.bisect_right(cuts, x.get(REGIME_FEATURE, 0.0)) if cuts else 0

    # -- inputs -----------------------------------------------------------------------------

    def _select(self, x: Mapping[str, float]) -> dict[str, float]:
        return {n: float(x.get(n, 0.0)) for n in self.feature_names}

    def vector(self, x: Mapping[str, float]) -> list[float]:
        """`x` as a list in `feature_names` order (what pending labels store)."""
        return [float(x.get(n, 0.0)) for n in self.feature_names]

    def from_vector(self, vector: Sequence[float]) -> dict[str, float]:
        """Inverse of `vector`; a longer vector (features appended later) is truncated."""
        return dict(zip(self.feature_names, map(float, vector), strict=False))

    # -- online learning --------------------------------------------------------------------

    @property
    def n_learned(self) -> int:
        """Labels learned since creation or the last `reset`."""
        return self.n_pos + self.n_neg

    def predict(self, x: Mapping[str, float], selected: dict[str, float] | None = None) -> float:
        """Probability that the user churns within the segment's horizon (`selected`:
        `_select(x)` if the caller has it).

        The logistic model is scored from a flat view of its parameters (same arithmetic as
        River, identical up to summation order) once a version is scored more than once;
        a version scored once (the trainer's predict-then-learn) goes through River.
        """
        if self.n_learned == 0 and self.estimator != "logistic":
            return self.base_rate
        r = self.regime(x)
        lin = self._linear[r]
        if lin is None or lin.version != self.version:
            if self._linear_asked[r] == self.version:
                lin = self._linear_view(r)
            else:
                self._linear_asked[r] = self.version
        if lin is not None and lin.version == self.version:
            z = 0.0
            c = lin.limit
            get = x.get
            for name, w, mean, std in lin.terms:
                u = (get(name, 0.0) - mean) / std
                z += w * (c if u > c else -c if u < -c else u)
            p = _river_sigmoid(z + lin.intercept)
            return p if math.isfinite(p) else self.base_rate
        if selected is None:
            selected = self._select(x)
        proba = self._models[r].predict_proba_one(selected)
        p = float(proba.get(True, 0.0))
        return p if math.isfinite(p) else self.base_rate

    def predict_then_learn(self, x: Mapping[str, float], y: bool) -> float:
        """`predict(x)`, then `learn(x, y)` (a trainer's predict-then-learn): the inputs are
        selected once for both (River reads them and copies what it transforms)."""
        selected = self._select(x)
        p = self.predict(x, selected)
        self.learn(x, y, selected)
        return p

    def learn(
        self, x: Mapping[str, float], y: bool, selected: dict[str, float] | None = None
    ) -> None:
        """Learn one labelled example and bump `version` (`selected`: `_select(x)` if the
        caller has it)."""
        if selected is None:
            selected = self._select(x)
        self._models[self.regime(x)].learn_one(selected, bool(y))
        if y:
            self.n_pos += 1
        else:
            self.n_neg += 1
        self.version += 1

    def ready(self, min_labels: int, min_each_class: int = 1) -> bool:
        """True once trained on >= `min_labels` labels, >= `min_each_class` of each class."""
        return (
            self.n_learned >= min_labels
            and self.n_pos >= min_each_class
            and self.n_neg >= min_each_class
        )

    def reset(self) -> None:
        """Forget everything learned (drift action "reset"); `version` keeps increasing."""
        self._models = [self._build() for _ in self._models]
        self._forget_views()
        self.n_pos = self.n_neg = 0
        self.n_resets += 1
        self.version += 1

    # -- explanations -----------------------------------------------------------------------

    def explain(self, x: Mapping[str, float], top: int = 3) -> list[Driver]:
        """Top risk-raising features: weight x standardised value, raw value reported.

        Only the linear default has a faithful additive decomposition of its log-odds; for
        trees and forests a per-feature split would need path attribution (e.g. TreeSHAP),
        which River does not provide online, so they return [] and callers fall back to the
        rules drivers.
        """
        if self.estimator != "logistic" or self.n_learned == 0:
            return []
        lin = self._linear_view(self.regime(x))
        if lin is None:
            return []
        c = lin.limit
        get = x.get
        contribs = []
        for name, w, mean, std in lin.drivers:
            # Inline clip: min()/max() calls per feature doubled the cost of explaining.
            u = (get(name, 0.0) - mean) / std
            contribs.append((name, w * (c if u > c else -c if u < -c else u)))
        return top_drivers(contribs, x, top)

    def _linear_view(self, r: int) -> _LinearView | None:
        """The cached view of regime `r`'s logistic parameters for this `version` (None: no
        fast path).

        Valid because the pipeline only changes through `learn`/`reset`, which bump `version`;
        not used while River's learn-during-predict mode would update the scaler on predict.
        """
        if self.estimator != "logistic" or compose.Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT:
            return None
        lin = self._linear[r]
        if lin is not None and lin.version == self.version:
            return lin
        pipeline = self._models[r]
        scaler: preprocessing.StandardScaler = pipeline["StandardScaler"]
        regression = pipeline["LogisticRegression"]
        weights = regression.weights  # a copy: once per version, not per call
        means, variances = scaler.means, scaler.vars
        terms = []
        drivers = []
        for name in self.feature_names:
            w = weights.get(name, 0.0)
            v = variances.get(name, 0.0)
            m = means.get(name, 0.0)
            if v:
                terms.append((name, w, m, v**0.5))  # StandardScaler.transform_one
            if w != 0.0 and v > 0.0:
                drivers.append((name, w, m, math.sqrt(v)))
        clip = pipeline.steps.get("ClipZ")
        limit = clip.limit if clip is not None else math.inf
        lin = _LinearView(
            self.version, float(regression.intercept), tuple(terms), tuple(drivers), limit
        )
        self._linear[r] = lin
        return lin

    # -- persistence ------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The model as data for the compacted `churn.models` topic (model.snapshot_codec)."""
        # Imported here: the codec rebuilds SegmentModel objects, so it imports this module.
        from churnstream.model import snapshot_codec

        return snapshot_codec.encode(self)

    @classmethod
    def from_snapshot(cls, data: bytes, *, allow_pickle: bool = False) -> SegmentModel:
        """Rebuild a model from `snapshot()` bytes; anything else raises `SnapshotError` (a
        ValueError). `allow_pickle`: see `snapshot_codec.decode` (trusted writers only)."""
        from churnstream.model import snapshot_codec

        return snapshot_codec.decode(data, allow_pickle=allow_pickle)
