"""The simulated history as one event-time-ordered stream of records."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from operator import attrgetter

from churnstream.stream.devtools.simulator.behaviour import customer_day
from churnstream.stream.devtools.simulator.config import BEHAVIOUR_TOPICS, SimConfig
from churnstream.stream.devtools.simulator.customers import DAY, churn_params, plan_customers
from churnstream.stream.devtools.simulator.faults import FaultInjector
from churnstream.stream.devtools.simulator.records import SimRecord
from churnstream.stream.devtools.simulator.truth import GroundTruth, build_truth

# Records of local day d+1 never fall earlier than UTC day d+1 minus this (UTC+9 is the
# easternest zone and nothing happens before 00:00 local), so day d's buffer is final below it.
_SPILL = 12 * 3600.0
_by_ts = attrgetter("ts")


def generate(config: SimConfig) -> Iterator[SimRecord]:
    """Yield every record of the simulated history in non-decreasing `ts`.

    Deterministic in `config`; memory stays around one simulated day of records.
    """
    return FaultInjector(config.bad_fraction, config.seed).apply(_clean_stream(config))


def ground_truth(config: SimConfig) -> GroundTruth:
    """The truth behind `generate(config)`: plans the customers and regenerates, per user, only
    the few days needed to find the last activity before its churn (cheap)."""
    customers = plan_customers(config)
    last_active: dict[str, float] = {}
    for c in customers:
        end = config.days - 1 if c.churn_day is None else c.churn_day
        for day in range(end, c.signup_day - 1, -1):
            records = customer_day(c, day, config.start, config.days)
            active = [r.ts for r in records if r.topic in BEHAVIOUR_TOPICS]
            if active:
                last_active[c.user_id] = max(active)
                break
    return build_truth(config, customers, churn_params(config), last_active)


def _clean_stream(config: SimConfig) -> Iterator[SimRecord]:
    customers = plan_customers(config)
    pending: list[SimRecord] = []
    for day in range(config.days):
        for c in customers:
            if c.is_active(day):
                pending.extend(customer_day(c, day, config.start, config.days))
        pending.sort(key=_by_ts)  # stable: ties keep generation order
        cut = bisect_left(pending, config.start + (day + 1) * DAY - _SPILL, key=_by_ts)
        yield from pending[:cut]
        del pending[:cut]
    yield from pending
