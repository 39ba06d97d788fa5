"""Recommended interventions for alerts, read from a small JSON playbook (pure).

The playbook maps the leading driver of an alert (its feature name) to an action code, with
optional per-segment overrides, per-kind defaults and a global default. Actions are declared
once by code so several features can share one intervention.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

from churnstream.stream.contract.alerts import ALERT_KINDS

DEFAULT_PLAYBOOK_RESOURCE: Final = "playbook.json"


class PlaybookError(ValueError):
    """The playbook file is malformed; the message names the offending key."""


@dataclass(frozen=True, slots=True)
class Driver:
    """One reason behind an alert: a feature, its raw value and its risk contribution."""

    feature: str
    value: float
    contribution: float

    @classmethod
    def coerce(cls, raw: Any) -> Driver:
        """Accept a Driver, a `{feature, value, contribution}` mapping, or any object with those
        attributes (e.g. `model.explain.Driver`)."""
        if isinstance(raw, Driver):
            return raw
        if isinstance(raw, Mapping):
            return cls(str(raw["feature"]), float(raw["value"]), float(raw["contribution"]))
        return cls(str(raw.feature), float(raw.value), float(raw.contribution))

    def to_dict(self) -> dict[str, Any]:
        """Contract form `{feature, value, contribution}`."""
        return {"feature": self.feature, "value": self.value, "contribution": self.contribution}


@dataclass(frozen=True, slots=True)
class Action:
    """A recommended intervention: a stable machine code and a text for people."""

    code: str
    text: str

    @property
    def label(self) -> str:
        """Short human label used in alert messages ("mentor_match" -> "mentor match")."""
        return self.code.replace("_", " ")

    def to_dict(self) -> dict[str, str]:
        """Contract form `{code, text}`."""
        return {"code": self.code, "text": self.text}


@dataclass(frozen=True, slots=True)
class _Rules:
    features: Mapping[str, str]
    kinds: Mapping[str, str]
    default: str | None


class Playbook:
    """Validated playbook; `choose` picks the action for an alert.

    Precedence, first match wins, for the leading driver's feature F and the alert kind K:
    segment feature rule F, global feature rule F, segment kind default K, global kind
    default K, segment default, global default.
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._actions, self._global, self._segments = _parse(data)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Playbook:
        """Load from a JSON file, or the packaged `model/playbook.json` when path is None."""
        if path is None:
            packaged = resources.files("churnstream.model").joinpath(DEFAULT_PLAYBOOK_RESOURCE)
            text = packaged.read_text("utf-8")
            source = f"model/{DEFAULT_PLAYBOOK_RESOURCE}"
        else:
            text = Path(path).read_text("utf-8")
            source = str(path)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PlaybookError(f"{source}: not valid JSON: {exc}") from exc
        try:
            return cls(data)
        except PlaybookError as exc:
            raise PlaybookError(f"{source}: {exc}") from exc

    @property
    def actions(self) -> Mapping[str, Action]:
        """All declared actions by code."""
        return dict(self._actions)

    def choose(self, segment: str | None, drivers: Sequence[Driver], kind: str) -> Action:
        """Action for an alert of `kind` in `segment` whose leading driver is `drivers[0]`."""
        feature = drivers[0].feature if drivers else None
        seg = self._segments.get(segment) if segment is not None else None
        candidates: list[str | None] = []
        if feature is not None:
            candidates += [
                seg.features.get(feature) if seg else None,
                self._global.features.get(feature),
            ]
        candidates += [
            seg.kinds.get(kind) if seg else None,
            self._global.kinds.get(kind),
            seg.default if seg else None,
            self._global.default,
        ]
        code = next(c for c in candidates if c is not None)  # global default always exists
        return self._actions[code]


def _parse(data: Mapping[str, Any]) -> tuple[dict[str, Action], _Rules, dict[str, _Rules]]:
    if not isinstance(data, Mapping):
        raise PlaybookError("top level must be a JSON object")
    _only_keys(data, {"version", "actions", "features", "kinds", "default", "segments"}, "")
    raw_actions = data.get("actions")
    if not isinstance(raw_actions, Mapping) or not raw_actions:
        raise PlaybookError("'actions' must be a non-empty object of code -> {text}")
    actions: dict[str, Action] = {}
    for code, spec in raw_actions.items():
        text = spec.get("text") if isinstance(spec, Mapping) else spec
        if not isinstance(text, str) or not text.strip():
            raise PlaybookError(f"actions.{code}: needs a non-empty 'text'")
        actions[code] = Action(code=code, text=text)
    glob = _rules(data, actions, "")
    if glob.default is None:
        raise PlaybookError("'default' (global default action code) is required")
    raw_segments = data.get("segments", {})
    if not isinstance(raw_segments, Mapping):
        raise PlaybookError("'segments' must be an object of segment -> rules")
    segments: dict[str, _Rules] = {}
    for name, body in raw_segments.items():
        if not isinstance(body, Mapping):
            raise PlaybookError(f"segments.{name}: must be an object")
        _only_keys(body, {"features", "kinds", "default"}, f"segments.{name}.")
        segments[name] = _rules(body, actions, f"segments.{name}.")
    return actions, glob, segments


def _rules(body: Mapping[str, Any], actions: Mapping[str, Action], where: str) -> _Rules:
    features = _code_map(body.get("features", {}), actions, f"{where}features")
    kinds = _code_map(body.get("kinds", {}), actions, f"{where}kinds")
    unknown_kinds = sorted(set(kinds) - set(ALERT_KINDS))
    if unknown_kinds:
        raise PlaybookError(f"{where}kinds: unknown alert kind(s) {unknown_kinds}")
    default = body.get("default")
    if default is not None:
        _check_code(default, actions, f"{where}default")
    return _Rules(features=features, kinds=kinds, default=default)


def _code_map(raw: Any, actions: Mapping[str, Action], where: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise PlaybookError(f"{where}: must be an object of name -> action code")
    for key, code in raw.items():
        _check_code(code, actions, f"{where}.{key}")
    return dict(raw)


def _check_code(code: Any, actions: Mapping[str, Action], where: str) -> None:
    if not isinstance(code, str) or code not in actions:
        raise PlaybookError(f"{where}: {code!r} is not a declared action code")


def _only_keys(body: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    extra = sorted(set(body) - set(allowed))
    if extra:
        raise PlaybookError(f"{where or 'top level'}: unknown key(s) {extra}")
