"""Uplift of interventions: churn of alerted treatment customers vs alerted holdout customers.

Pure: the alerts come as `churn.alerts` records (with the `holdout` flag of an experiment,
model/experiment.py) and each alert's outcome from a callable (churned within the alert's
horizon or not; None while the horizon has not passed). Per segment x action, each customer
counts once, with its first alert of that action. The absolute uplift is the holdout's churn
rate minus the treated one's (positive: the action keeps customers), with Newcombe's 95%
interval for a difference of proportions (hybrid Wilson score; reliable with small arms and
rates near 0), and the number of alerted customers still needed, at the current split, for a
two-sided 5% test with 80% power to detect the observed difference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["Arm", "UpliftRow", "measure", "needed_total", "newcombe", "wilson"]

Z95: Final = 1.959963984540054  # two-sided 5%
Z80: Final = 0.8416212335729143  # one-sided 20% (power 80%)


@dataclass(frozen=True, slots=True)
class Arm:
    """Alerted customers of one arm and how many of them churned within the horizon."""

    n: int = 0
    churned: int = 0

    @property
    def rate(self) -> float | None:
        return self.churned / self.n if self.n else None


@dataclass(frozen=True, slots=True)
class UpliftRow:
    """One segment x action."""

    segment: str
    action: str
    treated: Arm
    holdout: Arm
    uplift: float | None  # holdout churn rate - treated churn rate
    ci_low: float | None
    ci_high: float | None
    more_needed: int | None  # alerted customers still needed; None: no difference to detect

    def to_dict(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "action": self.action,
            "treated": self.treated.n,
            "treated_churned": self.treated.churned,
            "treated_churn_rate": self.treated.rate,
            "holdout": self.holdout.n,
            "holdout_churned": self.holdout.churned,
            "holdout_churn_rate": self.holdout.rate,
            "uplift": self.uplift,
            "ci95": None if self.ci_low is None else [self.ci_low, self.ci_high],
            "more_needed": self.more_needed,
        }


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(a: Arm, b: Arm, z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval of rate(a) - rate(b)."""
    p1, p2 = a.churned / a.n, b.churned / b.n
    l1, u1 = wilson(a.churned, a.n, z)
    l2, u2 = wilson(b.churned, b.n, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return low, high


def needed_total(p_hold: float, p_treat: float, ratio: float) -> float | None:
    """Alerted customers (both arms) for a two-sided 5% test with 80% power to detect
    `p_hold - p_treat`, with `ratio` treated per holdout customer; None without a difference."""
    delta = abs(p_hold - p_treat)
    if delta == 0 or ratio <= 0:
        return None
    pooled = (p_hold + ratio * p_treat) / (1 + ratio)
    n_hold = (
        Z95 * math.sqrt(pooled * (1 - pooled) * (1 + 1 / ratio))
        + Z80 * math.sqrt(p_hold * (1 - p_hold) + p_treat * (1 - p_treat) / ratio)
    ) ** 2 / delta**2
    return n_hold * (1 + ratio)


def measure(
    alerts: Iterable[Mapping[str, Any]],
    outcome: Callable[[Mapping[str, Any]], bool | None],
    kinds: Iterable[str] | None = None,
) -> list[UpliftRow]:
    """Uplift per segment x action over `alerts` of an experiment (alerts without the
    `holdout` flag are not part of it and are skipped; so are alerts whose outcome is None).
    `kinds`: only these alert kinds (default: all)."""
    wanted = None if kinds is None else set(kinds)
    first: dict[tuple[str, str, str], Mapping[str, Any]] = {}
    for alert in alerts:
        if not isinstance(alert.get("holdout"), bool):
            continue
        if wanted is not None and alert.get("kind") not in wanted:
            continue
        action = (alert.get("action") or {}).get("code", "?")
        key = (str(alert.get("segment")), str(action), str(alert.get("user_id")))
        if key not in first or alert["ts"] < first[key]["ts"]:
            first[key] = alert
    counts: dict[tuple[str, str], dict[bool, list[int]]] = {}
    for (segment, action, _), alert in sorted(first.items()):
        churned = outcome(alert)
        if churned is None:
            continue
        arms = counts.setdefault((segment, action), {True: [0, 0], False: [0, 0]})
        arm = arms[bool(alert["holdout"])]
        arm[0] += 1
        arm[1] += int(churned)
    rows = []
    for (segment, action), arms in sorted(counts.items()):
        treated, holdout = Arm(*arms[False]), Arm(*arms[True])
        rows.append(_row(segment, action, treated, holdout))
    return rows


def _row(segment: str, action: str, treated: Arm, holdout: Arm) -> UpliftRow:
    if not treated.n or not holdout.n:
        return UpliftRow(segment, action, treated, holdout, None, None, None, None)
    p_hold, p_treat = holdout.churned / holdout.n, treated.churned / treated.n
    low, high = newcombe(holdout, treated)
    # Not 0 just because the interval excludes 0: a few customers can do that by chance, and
    # the power calculation says how many it takes to see the difference reliably.
    total = needed_total(p_hold, p_treat, treated.n / holdout.n)
    more = None if total is None else max(0, math.ceil(total) - treated.n - holdout.n)
    return UpliftRow(segment, action, treated, holdout, p_hold - p_treat, low, high, more)
