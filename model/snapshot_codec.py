"""Model snapshots as data: a versioned JSON document, rebuilt by code on load (pure).

Anyone who can write to `churn.models` used to run code on every worker, because snapshots were
pickles. A snapshot is now a JSON object of the model's parameters: for the default logistic
model, per recency regime, the scaler's counts, means and variances, the ClipZ cap, the
weights, intercept, optimizer step count and AdaGrad's squared-gradient sums; and the model's
metadata (segment, feature names, version, counts, the label time it covers, the ids of the
examples it learned, optimizer, learning rate, L2, regime cuts). `decode` checks every field's
type and rebuilds the River pipelines with `build_estimator`, so loading runs only this code.

Format 3 added the optimizer, L2 and regimes; format 2 documents (one SGD pipeline) still load.

River's tree models (hoeffding, arf) have no such description here: their snapshot carries the
pickled estimator inside the document, and `decode` refuses it, like a whole pickle from before
format 2, unless the caller passes `allow_pickle=True` (`CHURNSTREAM_TRUST_PICKLED_SNAPSHOTS`,
only when no one but the trainer can write `churn.models`).
"""

from __future__ import annotations

import base64
import io
import json
import math
import pickle
import sys
from array import array
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any, Final

from river import optim

from churnstream.model.learner import OPTIMIZERS, SegmentModel, build_estimator

KIND: Final = "churnstream.segment-model"
FORMAT: Final = 3
# Format 2: one pipeline, SGD at a constant rate, no L2 (before regimes); still read.
READ_FORMATS: Final = (2, FORMAT)
LEGACY_PICKLE_FORMAT: Final = 1
# Where to set the opt-in, named in every refusal of a pickle.
PICKLE_OPT_IN: Final = "CHURNSTREAM_TRUST_PICKLED_SNAPSHOTS=true"


class SnapshotError(ValueError):
    """The bytes are not a snapshot this code may load; the message is one line."""


# -- encode ----------------------------------------------------------------------------------


def encode(model: SegmentModel) -> bytes:
    """The snapshot document of `model` (UTF-8 JSON, keys in a fixed order)."""
    doc: dict[str, Any] = {
        "kind": KIND,
        "format": FORMAT,
        "segment": model.segment,
        "estimator": model.estimator,
        "base_rate": model.base_rate,
        "feature_names": list(model.feature_names),
        "seed": model.seed,
        "clip_z": model.clip_z,
        "version": model.version,
        "n_pos": model.n_pos,
        "n_neg": model.n_neg,
        "n_resets": model.n_resets,
        # JSON has no infinity: "covers no label yet" is null.
        "labels_until": model.labels_until if math.isfinite(model.labels_until) else None,
        "learned_until": model.learned_until if math.isfinite(model.learned_until) else None,
        "learned_ids": _ids_to_text(model.learned_ids),
        "optimizer": model.optimizer,
        "learning_rate": model.learning_rate,
        "l2": model.l2,
        "regime_cuts": list(model.regime_cuts),
    }
    if model.estimator == "logistic":
        doc["logistic"] = [_logistic_state(p, model) for p in model.pipelines]
    else:
        (tree_model,) = model.pipelines  # trees have no regimes
        doc["pickle"] = base64.b64encode(pickle.dumps(tree_model, protocol=5)).decode()
    return json.dumps(doc, allow_nan=False, separators=(",", ":")).encode()


def _logistic_state(pipeline: Any, model: SegmentModel) -> dict[str, Any]:
    scaler = pipeline["StandardScaler"]
    regression = pipeline["LogisticRegression"]
    optimizer = regression.optimizer
    # Only what build_estimator makes from the model's settings can be rebuilt from them.
    kind = {optim.SGD: "sgd", optim.AdaGrad: "adagrad"}.get(type(optimizer))
    if (
        kind != model.optimizer
        or not isinstance(optimizer.lr, optim.schedulers.Constant)
        or optimizer.lr.learning_rate != model.learning_rate
        or regression.l2 != model.l2
    ):
        raise SnapshotError(f"cannot describe optimizer {optimizer!r} as data")
    clip = pipeline.steps.get("ClipZ")
    state: dict[str, Any] = {
        "scaler": {
            "counts": dict(scaler.counts),
            "means": dict(scaler.means),
            "vars": dict(scaler.vars),
        },
        "clip_limit": clip.limit if clip is not None else None,
        "weights": dict(regression._weights),
        "intercept": regression.intercept,
        "intercept_init": regression.intercept_init,
        "n_iterations": optimizer.n_iterations,
    }
    if kind == "adagrad":
        state["g2"] = dict(optimizer.g2)
    return state


def _ids_to_text(ids: tuple[int, ...]) -> str:
    # 8 little-endian bytes per id in base64: a third of the size of a JSON list of numbers.
    packed = array("Q", ids)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()


# -- decode ----------------------------------------------------------------------------------


def decode(data: bytes, *, allow_pickle: bool = False) -> SegmentModel:
    """Rebuild a model from `encode` bytes; anything else raises `SnapshotError`.

    `allow_pickle` also loads tree models and format-1 pickles: unpickling runs whatever the
    bytes name, so pass it only when no one but the trainer can write the snapshots.
    """
    if data[:1] != b"{":
        if not allow_pickle:
            raise SnapshotError(f"pickled snapshot refused (opt in: {PICKLE_OPT_IN})")
        return _from_legacy_pickle(data)
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SnapshotError(f"snapshot is not valid JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise SnapshotError("not a churnstream model snapshot")
    if doc.get("format") not in READ_FORMATS:
        raise SnapshotError(f"snapshot format {doc.get('format')!r} not supported (this: {FORMAT})")
    try:
        return _from_doc(doc, allow_pickle)
    except SnapshotError:
        raise
    except (KeyError, TypeError, ValueError) as e:  # a field missing or of the wrong type
        raise SnapshotError(f"malformed snapshot: {type(e).__name__}: {e}") from None


def _from_doc(doc: Mapping[str, Any], allow_pickle: bool) -> SegmentModel:
    m = SegmentModel.__new__(SegmentModel)
    m.segment = _text(doc["segment"])
    m.estimator = _text(doc["estimator"])
    m.base_rate = _number(doc["base_rate"])
    names = doc["feature_names"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise SnapshotError("feature_names must be a list of strings")
    m.feature_names = tuple(names)
    m.seed = _count(doc["seed"])
    m.clip_z = _number(doc["clip_z"])
    m.version = _count(doc["version"])
    m.n_pos = _count(doc["n_pos"])
    m.n_neg = _count(doc["n_neg"])
    m.n_resets = _count(doc["n_resets"])
    until = doc["labels_until"]
    m.labels_until = -math.inf if until is None else _number(until)
    # Absent before 2026-12 (model.scoring then goes by `labels_until` alone).
    learned = doc.get("learned_until")
    m.learned_until = -math.inf if learned is None else _number(learned)
    m.learned_ids = _ids_from_text(_text(doc["learned_ids"]))
    if doc["format"] == 2:
        _format2_settings(m, doc)
    else:
        m.optimizer = _text(doc["optimizer"])
        if m.optimizer not in OPTIMIZERS:
            raise SnapshotError(f"unknown optimizer {m.optimizer!r}")
        m.learning_rate = _number(doc["learning_rate"])
        m.l2 = _number(doc["l2"])
        cuts = doc["regime_cuts"]
        if not isinstance(cuts, list):
            raise SnapshotError("regime_cuts must be a list of numbers")
        m.regime_cuts = tuple(_number(c) for c in cuts)
        if any(b <= a for a, b in zip(m.regime_cuts, m.regime_cuts[1:], strict=False)):
            raise SnapshotError("regime_cuts must increase")
    if m.estimator == "logistic":
        states = doc["logistic"]
        if not isinstance(states, list) or len(states) != len(m.regime_cuts) + 1:
            raise SnapshotError("logistic must hold one pipeline per regime")
        m._models = [_logistic_pipeline(m, _mapping(state)) for state in states]
    elif "pickle" in doc:
        if not allow_pickle:
            raise SnapshotError(
                f"{m.estimator} snapshot holds a pickle, refused (opt in: {PICKLE_OPT_IN})"
            )
        if m.regime_cuts:
            raise SnapshotError(f"{m.estimator} snapshot with regimes")
        raw = base64.b64decode(_text(doc["pickle"]), validate=True)
        m._models = [pickle.loads(raw)]  # noqa: S301  # the caller trusts the writers (opt-in)
    else:
        raise SnapshotError(f"unknown estimator {m.estimator!r}")
    m._forget_views()
    return m


def _format2_settings(m: SegmentModel, doc: dict[str, Any]) -> None:
    """A format-2 document: one pipeline that learned with SGD at the rate it names, no L2.
    Rewritten in place as the one-element list of format 3."""
    m.optimizer, m.l2, m.regime_cuts = "sgd", 0.0, ()
    m.learning_rate = 0.01
    if m.estimator == "logistic":
        state = dict(_mapping(doc["logistic"]))
        sgd = _mapping(state.pop("sgd"))
        m.learning_rate = _number(sgd["lr"])
        state["n_iterations"] = sgd["n_iterations"]
        doc["logistic"] = [state]


def _logistic_pipeline(m: SegmentModel, state: Mapping[str, Any]) -> Any:
    clip_limit = state["clip_limit"]
    # The pipeline's shape follows clip_z (as when it was built); its cap is the stored one.
    if (clip_limit is None) != (m.clip_z <= 0):
        raise SnapshotError("clip_limit does not match clip_z")
    pipeline = build_estimator(
        "logistic", m.base_rate, m.seed, m.clip_z, m.optimizer, m.learning_rate, m.l2
    )
    scaler = pipeline["StandardScaler"]
    scaler.counts = Counter({k: _count(v) for k, v in _mapping(state["scaler"]["counts"]).items()})
    scaler.means = defaultdict(float, _numbers(state["scaler"]["means"]))
    scaler.vars = defaultdict(float, _numbers(state["scaler"]["vars"]))
    if clip_limit is not None:
        pipeline["ClipZ"].limit = _number(clip_limit)
    regression = pipeline["LogisticRegression"]
    for name, weight in _numbers(state["weights"]).items():
        regression._weights[name] = weight
    regression.intercept = _number(state["intercept"])
    regression.intercept_init = _number(state["intercept_init"])
    optimizer = regression.optimizer
    optimizer.n_iterations = _count(state["n_iterations"])
    if m.optimizer == "adagrad":
        optimizer.g2 = defaultdict(float, _numbers(state["g2"]))
    return pipeline


def _ids_from_text(text: str) -> tuple[int, ...]:
    raw = base64.b64decode(text, validate=True)
    if len(raw) % 8:
        raise SnapshotError("learned_ids is not a whole number of 8-byte ids")
    ids = array("Q")
    ids.frombytes(raw)
    if sys.byteorder == "big":
        ids.byteswap()
    return tuple(ids)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise SnapshotError(f"expected a string, got {type(value).__name__}")
    return value


def _number(value: Any) -> float:
    # bool is an int: refuse it, a flag where a number belongs is a malformed document.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SnapshotError(f"expected a finite number, got {value!r}")
    return float(value)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SnapshotError(f"expected a count, got {value!r}")
    return value


def _mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise SnapshotError(f"expected an object, got {type(value).__name__}")
    return value


def _numbers(value: Any) -> dict[str, float]:
    return {str(k): _number(v) for k, v in _mapping(value).items()}


# -- format 1: a pickle (opt-in only) ----------------------------------------------------------


def _from_legacy_pickle(data: bytes) -> SegmentModel:
    state = _RenamingUnpickler(io.BytesIO(data)).load()
    if not isinstance(state, dict) or state.get("format") != LEGACY_PICKLE_FORMAT:
        raise SnapshotError("not a SegmentModel snapshot of a supported format")
    m = SegmentModel.__new__(SegmentModel)
    m.segment = state["segment"]
    m.estimator = state["estimator"]
    m.base_rate = state["base_rate"]
    m.feature_names = tuple(state["feature_names"])
    m.seed = state["seed"]
    m.clip_z = state.get("clip_z", 0.0)  # older snapshots: no ClipZ step in the pipeline
    m.version = state["version"]
    m.n_pos = state["n_pos"]
    m.n_neg = state["n_neg"]
    m.n_resets = state["n_resets"]
    # Snapshots from before the field: what they learned is unknown, so they cover nothing.
    m.labels_until = state.get("labels_until", -math.inf)
    m.learned_until = -math.inf
    m.learned_ids = tuple(state.get("learned_ids", ()))
    m.optimizer, m.learning_rate, m.l2, m.regime_cuts = "sgd", 0.01, 0.0, ()
    m._models = [state["model"]]
    m._forget_views()
    return m


class _RenamingUnpickler(pickle.Unpickler):
    """Reads format-1 snapshots written before the code moved under `churnstream.*` (version
    0.1 pickled its classes as `model.learner.ClipZ`, ...). Opt-in only, see `decode`."""

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".", 1)[0] in {"model", "features", "stream", "agents"}:
            module = f"churnstream.{module}"
        return super().find_class(module, name)
