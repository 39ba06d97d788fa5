"""Readable one-line rendering of output records for `churnstream tail` (pure, never raises).

Alerts, risk scores and DLQ records get aligned columns and, with `color=True`, ANSI colour
by severity. Anything else, or anything that does not decode, is shown as compact JSON or a
bytes repr. Every string taken from a record is escaped, so a hostile `user_id` cannot send
terminal control sequences.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from churnstream.stream.contract.timefmt import rfc3339

__all__ = ["format_record"]

RESET: Final = "\x1b[0m"
RED: Final = "\x1b[31m"
BOLD_RED: Final = "\x1b[1;31m"
YELLOW: Final = "\x1b[33m"
GREEN: Final = "\x1b[32m"
MAGENTA: Final = "\x1b[35m"
DIM: Final = "\x1b[2m"

# Colour bands for risk scores; the real thresholds are per segment and live in model config,
# these only guide the eye.
SCORE_HIGH: Final = 0.7
SCORE_MEDIUM: Final = 0.4
MAX_DRIVERS: Final = 3
USER_WIDTH: Final = 20
TS_WIDTH: Final = 24  # fits RFC 3339 with milliseconds (DLQ received_at)


def _clean(text: str) -> str:
    """Escape non-printable characters (ESC, CSI, newlines...) so output stays one safe line."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"
        for c in text
    )


def _s(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, int | float | bool):
        return str(value)
    return _clean(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode())


def _num(value: object, digits: int = 3) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.{digits}f}"
    return _s(value)


def _ts(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            # Whole seconds are enough on a terminal: the contract form without its fraction.
            return rfc3339(value)[:19] + "Z"
        except (OverflowError, OSError, ValueError):
            return str(value)
    return _s(value)


def _paint(text: str, code: str, color: bool) -> str:
    return f"{code}{text}{RESET}" if color else text


def _drivers(drivers: object) -> str:
    if not isinstance(drivers, list) or not drivers:
        return ""
    parts = []
    for d in drivers[:MAX_DRIVERS]:
        if isinstance(d, dict):
            contrib = d.get("contribution")
            sign = "+" if isinstance(contrib, int | float) and contrib >= 0 else ""
            parts.append(
                f"{_s(d.get('feature'))}={_num(d.get('value'), 2)}({sign}{_num(contrib, 2)})"
            )
        else:
            parts.append(_s(d))
    return "why: " + ", ".join(parts)


def _action(action: object) -> str:
    if isinstance(action, dict):
        return _s(action.get("code") or action.get("text"))
    return _s(action)


def _alert(doc: dict[str, Any], color: bool) -> str:
    severity = _s(doc.get("severity"))
    shade = {"critical": BOLD_RED, "warning": YELLOW}.get(severity, "")
    head = _paint(f"{'ALERT':<6}{severity.upper():<9}", shade, color and bool(shade))
    cols = [
        f"{_ts(doc.get('ts')):<{TS_WIDTH}}",
        head + f"{_s(doc.get('kind')):<11}",
        f"{_s(doc.get('user_id')):<{USER_WIDTH}}",
        f"{_s(doc.get('segment')):<6}",
        f"value={_num(doc.get('value'))} thr={_num(doc.get('threshold'))}",
        f"action={_action(doc.get('action'))}",
        _drivers(doc.get("drivers")),
    ]
    return "  ".join(c for c in cols if c)


def _score(doc: dict[str, Any], color: bool) -> str:
    score = doc.get("score")
    shade = ""
    if isinstance(score, int | float) and not isinstance(score, bool):
        shade = RED if score >= SCORE_HIGH else YELLOW if score >= SCORE_MEDIUM else GREEN
    head = f"{'SCORE':<6}" + _paint(f"{_num(score):<9}", shade, color and bool(shade))
    cols = [
        f"{_ts(doc.get('ts')):<{TS_WIDTH}}",
        head + f"{_s(doc.get('source')):<11}",
        f"{_s(doc.get('user_id')):<{USER_WIDTH}}",
        f"{_s(doc.get('segment')):<6}",
        f"h={_s(doc.get('horizon_days'))}d model={_s(doc.get('model_version'))}",
        _drivers(doc.get("drivers")),
    ]
    return "  ".join(c for c in cols if c)


def _dlq(doc: dict[str, Any], color: bool) -> str:
    where = f"{_s(doc.get('source_topic'))}[{_s(doc.get('partition'))}]@{_s(doc.get('offset'))}"
    size = doc.get("payload_size")
    cols = [
        f"{_s(doc.get('received_at')):<{TS_WIDTH}}",
        _paint(f"{'DLQ':<6}{_s(doc.get('error')):<24}", MAGENTA, color),
        where,
        _s(doc.get("detail")),
        f"({size} B)" if isinstance(size, int) else "",
    ]
    return "  ".join(c for c in cols if c)


def _kind_of(topic: str, doc: dict[str, Any]) -> str | None:
    # Topic names are configurable (prefixes), so match on the suffix, then on the shape.
    for suffix in ("alerts", "risk-scores", "dlq"):
        if topic.endswith(suffix):
            return suffix
    if "alert_id" in doc:
        return "alerts"
    if "score" in doc and "user_id" in doc:
        return "risk-scores"
    if "payload_b64" in doc:
        return "dlq"
    return None


_FORMATTERS: Final = {"alerts": _alert, "risk-scores": _score, "dlq": _dlq}


def format_record(topic: str, value: bytes, *, color: bool) -> str:
    """One line for a record of `topic` (alerts, risk scores, DLQ; anything else as raw JSON).

    Never raises: undecodable values are shown as a bytes repr, unknown shapes as JSON.
    """
    try:
        doc = orjson.loads(value)
    except (orjson.JSONDecodeError, TypeError):
        return _clean(repr(value))
    try:
        if isinstance(doc, dict):
            kind = _kind_of(topic, doc)
            if kind is not None:
                return _FORMATTERS[kind](doc, color)
        return _s(doc)
    except Exception:  # a tail must keep going whatever a producer wrote
        return _clean(repr(value))
