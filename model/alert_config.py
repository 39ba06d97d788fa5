"""Alert thresholds, cooldowns and the intervention experiment from a TOML file (pure).

`CHURNSTREAM_ALERTS_CONFIG` names the file (docs/alerts.md, "Configuration file"). Everything
in it is optional; what it leaves out keeps the defaults of the code (`AlertConfig`,
`DEFAULT_SEGMENT_THRESHOLDS`), so an empty file changes nothing:

    cooldown_days = 7            # every segment not given its own

    [segments.saas]              # any of warning, critical, clear (hysteresis), cooldown_days,
    warning = 0.3                # daily_budget (most churn_risk alerts per event-time day)
    critical = 0.6
    daily_budget = 20

    [experiment]                 # A/B holdout (model/experiment.py); absent = no experiment
    name = "interventions-2026-12"
    holdout_share = 0.1
    segments = { course = 0.2 }

A bad file raises `AlertConfigError` with one line naming the key.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from churnstream.model.alert_policy import AlertConfig
from churnstream.model.experiment import (
    DEFAULT_EFFECT_DAYS,
    DEFAULT_HOLDOUT_SHARE,
    Experiment,
)
from churnstream.stream.contract.events import DAY_S, SEGMENTS

__all__ = ["AlertConfigError", "AlertSetup", "load_alert_config", "parse_alert_config"]

_TOP_KEYS: Final = frozenset({"cooldown_days", "segments", "experiment"})
_SEGMENT_KEYS: Final = frozenset({"warning", "critical", "clear", "cooldown_days", "daily_budget"})
_EXPERIMENT_KEYS: Final = frozenset(
    {"name", "holdout_share", "segments", "learn_from_treated", "effect_days"}
)


class AlertConfigError(ValueError):
    """The alert configuration cannot be used; the message is one line naming the key."""


@dataclass(frozen=True, slots=True)
class AlertSetup:
    """What the file decides: the policy's configuration and the experiment, if any."""

    config: AlertConfig
    experiment: Experiment | None = None


def load_alert_config(path: str | Path, base: AlertConfig) -> AlertSetup:
    """Read `path` over `base` (the defaults and the settings' cooldown)."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise AlertConfigError(f"{p}: not valid TOML: {exc}") from None
    try:
        return parse_alert_config(doc, base)
    except AlertConfigError as exc:
        raise AlertConfigError(f"{p}: {exc}") from None


def parse_alert_config(doc: Mapping[str, Any], base: AlertConfig) -> AlertSetup:
    """Validate a parsed file and lay it over `base`."""
    _known(doc, _TOP_KEYS, "")
    cooldown_s = base.cooldown_s
    if "cooldown_days" in doc:
        cooldown_s = _number(doc["cooldown_days"], "cooldown_days") * DAY_S
    segments = _table(doc, "segments", "")
    thresholds = dict(base.segment_thresholds)
    cooldowns = dict(base.segment_cooldown_s)
    budgets = dict(base.daily_budget)
    for segment, raw in segments.items():
        where = f"segments.{segment}"
        if segment not in SEGMENTS:
            raise AlertConfigError(f"{where}: unknown segment (one of {', '.join(SEGMENTS)})")
        if not isinstance(raw, dict):
            raise AlertConfigError(f"{where}: must be a table")
        _known(raw, _SEGMENT_KEYS, where)
        levels = thresholds.get(segment, base.thresholds)
        values = {
            key: _number(raw[key], f"{where}.{key}", upper=1.0)
            for key in ("warning", "critical", "clear")
            if key in raw
        }
        try:
            thresholds[segment] = replace(levels, **values)
        except ValueError:
            merged = {
                k: values.get(k, getattr(levels, k)) for k in ("clear", "warning", "critical")
            }
            shown = ", ".join(f"{k} {v:g}" for k, v in merged.items())
            raise AlertConfigError(
                f"{where}: need clear <= warning <= critical (got {shown})"
            ) from None
        if "cooldown_days" in raw:
            cooldowns[segment] = _number(raw["cooldown_days"], f"{where}.cooldown_days") * DAY_S
        if "daily_budget" in raw:
            budget = raw["daily_budget"]
            if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
                raise AlertConfigError(
                    f"{where}.daily_budget: must be an integer >= 0 (got {budget!r})"
                )
            budgets[segment] = budget
    config = replace(
        base,
        cooldown_s=cooldown_s,
        segment_thresholds=thresholds,
        segment_cooldown_s=cooldowns,
        daily_budget=budgets,
    )
    return AlertSetup(config, _experiment(doc))


def _experiment(doc: Mapping[str, Any]) -> Experiment | None:
    if "experiment" not in doc:
        return None
    raw = _table(doc, "experiment", "")
    _known(raw, _EXPERIMENT_KEYS, "experiment")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise AlertConfigError("experiment.name: required, a non-empty string")
    share = DEFAULT_HOLDOUT_SHARE
    if "holdout_share" in raw:
        share = _number(raw["holdout_share"], "experiment.holdout_share", upper=1.0)
    shares = {}
    for segment, value in _table(raw, "segments", "experiment").items():
        if segment not in SEGMENTS:
            raise AlertConfigError(
                f"experiment.segments.{segment}: unknown segment (one of {', '.join(SEGMENTS)})"
            )
        shares[segment] = _number(value, f"experiment.segments.{segment}", upper=1.0)
    learn = raw.get("learn_from_treated", False)
    if not isinstance(learn, bool):
        raise AlertConfigError("experiment.learn_from_treated: must be true or false")
    effect_days = DEFAULT_EFFECT_DAYS
    if "effect_days" in raw:
        effect_days = _number(raw["effect_days"], "experiment.effect_days")
    return Experiment(name.strip(), share, shares, learn, effect_days)


def _known(raw: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        prefix = f"{where}." if where else ""
        raise AlertConfigError(f"{prefix}{unknown[0]}: unknown key")


def _table(raw: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise AlertConfigError(f"{where + '.' if where else ''}{key}: must be a table")
    return value


def _number(value: Any, name: str, upper: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AlertConfigError(f"{name}: must be a number (got {value!r})")
    if not 0.0 <= value <= upper:
        bound = f"in [0, {upper:g}]" if math.isfinite(upper) else ">= 0"
        raise AlertConfigError(f"{name}: must be {bound} (got {value:g})")
    return float(value)
