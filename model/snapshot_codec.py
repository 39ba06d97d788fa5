"""Model snapshots as data: a versioned JSON document, rebuilt by code on load (pure).

Anyone who can write to `churn.models` used to run code on every worker, because snapshots were
pickles. A snapshot is now a JSON object of the model's parameters: for the default logistic
pipeline the scaler's counts, means and variances, the ClipZ cap, the weights, intercept and
optimizer step count; and the model's metadata (segment, feature names, version, counts, the
label time it covers, the ids of the examples it learned). `decode` checks every field's type
and rebuilds the River pipeline with `build_estimator`, so loading runs only this code.

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

from churnstream.model.learner import SegmentModel, build_estimator

KIND: Final = "churnstream.segment-model"
FORMAT: Final = 2
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
        "learned_ids": _ids_to_text(model.learned_ids),
    }
    if model.estimator == "logistic":
        doc["logistic"] = _logistic_state(model._model)
    else:
        doc["pickle"] = base64.b64encode(pickle.dumps(model._model, protocol=5)).decode()
    return json.dumps(doc, allow_nan=False, separators=(",", ":")).encode()


def _logistic_state(pipeline: Any) -> dict[str, Any]:
    scaler = pipeline["StandardScaler"]
    regression = pipeline["LogisticRegression"]
    optimizer = regression.optimizer
    if not isinstance(optimizer, optim.SGD) or not isinstance(
        optimizer.lr, optim.schedulers.Constant
    ):
        raise SnapshotError(f"cannot describe optimizer {optimizer!r} as data")
    clip = pipeline.steps.get("ClipZ")
    return {
        "scaler": {
            "counts": dict(scaler.counts),
            "means": dict(scaler.means),
            "vars": dict(scaler.vars),
        },
        "clip_limit": clip.limit if clip is not None else None,
        "weights": dict(regression._weights),
        "intercept": regression.intercept,
        "intercept_init": regression.intercept_init,
        "sgd": {
            "lr": optimizer.lr.learning_rate,
            "n_iterations": optimizer.n_iterations,
        },
    }


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
    if doc.get("format") != FORMAT:
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
    m.learned_ids = _ids_from_text(_text(doc["learned_ids"]))
    m._linear = None
    m._linear_asked = -1
    if m.estimator == "logistic":
        m._model = _logistic_pipeline(m, doc["logistic"])
    elif "pickle" in doc:
        if not allow_pickle:
            raise SnapshotError(
                f"{m.estimator} snapshot holds a pickle, refused (opt in: {PICKLE_OPT_IN})"
            )
        raw = base64.b64decode(_text(doc["pickle"]), validate=True)
        m._model = pickle.loads(raw)  # noqa: S301  # the caller trusts the writers (opt-in)
    else:
        raise SnapshotError(f"unknown estimator {m.estimator!r}")
    return m


def _logistic_pipeline(m: SegmentModel, state: Mapping[str, Any]) -> Any:
    clip_limit = state["clip_limit"]
    # The pipeline's shape follows clip_z (as when it was built); its cap is the stored one.
    if (clip_limit is None) != (m.clip_z <= 0):
        raise SnapshotError("clip_limit does not match clip_z")
    pipeline = build_estimator("logistic", m.base_rate, m.seed, m.clip_z)
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
    sgd = _mapping(state["sgd"])
    regression.optimizer = optim.SGD(_number(sgd["lr"]))
    regression.optimizer.n_iterations = _count(sgd["n_iterations"])
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
    m.learned_ids = tuple(state.get("learned_ids", ()))
    m._model = state["model"]
    m._linear = None
    m._linear_asked = -1
    return m


class _RenamingUnpickler(pickle.Unpickler):
    """Reads format-1 snapshots written before the code moved under `churnstream.*` (version
    0.1 pickled its classes as `model.learner.ClipZ`, ...). Opt-in only, see `decode`."""

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".", 1)[0] in {"model", "features", "stream", "agents"}:
            module = f"churnstream.{module}"
        return super().find_class(module, name)
