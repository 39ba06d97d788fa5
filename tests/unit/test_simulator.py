"""Customer simulator: determinism, ordering, contract validity, churn signals, faults, truth."""

from __future__ import annotations

import copy
import itertools
import random
import statistics
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from churnstream.stream.contract.topics import KIND_BY_TOPIC
from churnstream.stream.contract.validation import Invalid, parse
from churnstream.stream.devtools.simulator import (
    GroundTruth,
    SimConfig,
    SimRecord,
    generate,
    ground_truth,
    read_jsonl,
    truth_path,
    write_jsonl,
)
from churnstream.stream.devtools.simulator.customers import (
    ChurnParams,
    new_customer,
    settle_churn,
    step_day,
)
from churnstream.stream.devtools.simulator.truth import UserTruth, churned_within, oracle_series

DAY = 86_400.0
CLEAN = SimConfig(users=400, days=60, seed=7)
FAULTY = SimConfig(users=80, days=20, seed=3, bad_fraction=0.03)


@pytest.fixture(scope="module")
def clean() -> list[SimRecord]:
    return list(generate(CLEAN))


@pytest.fixture(scope="module")
def truth() -> GroundTruth:
    return ground_truth(CLEAN)


@pytest.fixture(scope="module")
def faulty() -> list[SimRecord]:
    return list(generate(FAULTY))


def _body(rec: SimRecord) -> bytes:
    return rec.raw if rec.raw is not None else orjson.dumps(rec.value)


# --- determinism and files --------------------------------------------------------------------


def test_same_seed_gives_byte_identical_jsonl(tmp_path: Path) -> None:
    cfg = SimConfig(users=60, days=14, seed=11, bad_fraction=0.02)
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    n = write_jsonl(generate(cfg), a)
    assert write_jsonl(generate(cfg), b) == n > 0
    assert a.read_bytes() == b.read_bytes()
    write_jsonl(generate(SimConfig(users=60, days=14, seed=12, bad_fraction=0.02)), c)
    assert a.read_bytes() != c.read_bytes()


def test_jsonl_round_trip(tmp_path: Path, faulty: list[SimRecord]) -> None:
    path = tmp_path / "sim.jsonl"
    assert write_jsonl(faulty, path) == len(faulty)
    assert list(read_jsonl(path)) == faulty
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    valid = next(line for line in lines if line["expect"] == "valid")
    raw = next(line for line in lines if line["expect"] == "empty")
    assert list(valid)[:3] == ["topic", "key", "value"]
    assert list(raw)[:3] == ["topic", "key", "raw_b64"] and raw["raw_b64"] == ""


def test_truth_file_round_trip(tmp_path: Path, truth: GroundTruth) -> None:
    out = tmp_path / "sim.jsonl"
    assert truth_path(out) == tmp_path / "sim.truth.json"
    truth.write(truth_path(out))
    assert GroundTruth.read(truth_path(out)) == truth


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        SimConfig(users=0)
    with pytest.raises(ValueError):
        SimConfig(churn_rate=1.5)
    with pytest.raises(ValueError):
        SimConfig(segments=("retail",))


# --- stream shape -----------------------------------------------------------------------------


def test_records_are_time_ordered_inside_the_period(clean: list[SimRecord]) -> None:
    ts = [r.ts for r in clean]
    assert all(a <= b for a, b in itertools.pairwise(ts))
    assert CLEAN.start <= ts[0] and ts[-1] < CLEAN.start + CLEAN.days * DAY


def test_every_record_is_valid_by_the_contract(clean: list[SimRecord]) -> None:
    ids: set[str] = set()
    ts_forms: set[type] = set()
    for rec in clean:
        assert rec.expect == "valid" and rec.raw is None and rec.value is not None
        event = parse(KIND_BY_TOPIC[rec.topic], _body(rec))
        assert not isinstance(event, Invalid), (rec, event)
        assert event.ts == pytest.approx(rec.ts, abs=1e-6)
        assert rec.key == event.user_id
        ids.add(event.event_id)
        ts_forms.add(type(rec.value["ts"]))
    assert len(ids) == len(clean)
    assert ts_forms == {str, float}


def test_volume_and_rhythm_are_realistic(clean: list[SimRecord], truth: GroundTruth) -> None:
    active_days = sum(h is not None for u in truth.users.values() for h in u.oracle)
    assert 5 <= len(clean) / active_days <= 40
    behaviour = [r for r in clean if r.topic.startswith("behaviour.")]
    weekday = [r for r in behaviour if int((r.ts - CLEAN.start) // DAY) % 7 < 5]
    # 5 weekdays vs 2 weekend days: weekend days are quieter per day.
    per_weekday = len(weekday) / 5
    per_weekend_day = (len(behaviour) - len(weekday)) / 2
    assert per_weekend_day < 0.85 * per_weekday
    signup_days = {int((u.signup_ts - CLEAN.start) // DAY) for u in truth.users.values()}
    assert 0 in signup_days and len(signup_days) > 20  # many at start, the rest staggered


def test_lifecycle_matches_truth(clean: list[SimRecord], truth: GroundTruth) -> None:
    life: dict[str, list[tuple[float, str]]] = defaultdict(list)
    last_behaviour: dict[str, float] = {}
    for rec in clean:
        assert rec.value is not None and rec.key is not None
        if rec.topic == "lifecycle.subscriptions":
            life[rec.key].append((rec.ts, rec.value["event"]))
        else:
            last_behaviour[rec.key] = rec.ts
    kinds = {event for events in life.values() for _, event in events}
    assert kinds == {"signup", "renewal", "plan_change", "cancel", "reactivate"}
    for uid, u in truth.users.items():
        events = life[uid]
        assert events[0] == (u.signup_ts, "signup")
        cancels = [ts for ts, event in events if event == "cancel"]
        assert cancels == ([] if u.cancel_ts is None else [u.cancel_ts])
        assert (u.cancel_ts is not None) == (u.churn_kind == "cancel")
        if u.churn_ts is not None and u.reactivate_ts is None and uid in last_behaviour:
            assert last_behaviour[uid] <= u.churn_ts  # gone means gone


# --- the hidden churn process -----------------------------------------------------------------


def _last_14_days(
    records: list[SimRecord], truth: GroundTruth
) -> Iterator[tuple[str, bool, SimRecord]]:
    end = CLEAN.start + CLEAN.days * DAY
    for rec in records:
        assert rec.key is not None and rec.value is not None
        u = truth.users[rec.key]
        stop = u.churn_ts if u.churn_ts is not None else end
        if stop - 14 * DAY <= rec.ts < stop:
            yield rec.key, u.churn_ts is not None, rec


def test_churners_show_the_intended_signals(clean: list[SimRecord], truth: GroundTruth) -> None:
    sums: dict[tuple[bool, str], float] = defaultdict(float)
    value: dict[str, float] = defaultdict(float)
    for _, churner, rec in _last_14_days(clean, truth):
        v = rec.value
        assert v is not None
        if rec.topic == "behaviour.video-views":
            sums[churner, "watch_min"] += v["watched_s"] / 60
        elif rec.topic == "behaviour.integration-syncs":
            sums[churner, "syncs"] += 1
            sums[churner, "sync_errors"] += v["status"] == "error"
        elif rec.topic == "business.value":
            value[rec.key or ""] += v["value"]
        elif rec.topic == "behaviour.document-jobs":
            sums[churner, "jobs"] += 1
            sums[churner, "job_failures"] += v["status"] == "failed"
    users: dict[tuple[bool, str], int] = defaultdict(int)
    for u in truth.users.values():
        users[u.churn_ts is not None, u.segment] += 1

    def per_user(churner: bool, name: str, segment: str) -> float:
        return sums[churner, name] / users[churner, segment]

    def ratio(churner: bool, part: str, whole: str) -> float:
        return sums[churner, part] / sums[churner, whole]

    assert per_user(True, "watch_min", "course") < 0.8 * per_user(False, "watch_min", "course")
    assert _median_saas_roi(clean, truth, value, churners=True) < 0.8 * _median_saas_roi(
        clean, truth, value, churners=False
    )
    assert ratio(True, "sync_errors", "syncs") > 2 * ratio(False, "sync_errors", "syncs")
    assert ratio(True, "job_failures", "jobs") > 2 * ratio(False, "job_failures", "jobs")


def _median_saas_roi(
    records: list[SimRecord], truth: GroundTruth, value: dict[str, float], *, churners: bool
) -> float:
    """Median over SaaS users of value / pro-rated plan cost in their last 14 days."""
    price = {
        r.key: r.value["plan_price"]
        for r in records
        if r.topic == "lifecycle.subscriptions" and r.value and r.value["event"] == "signup"
    }
    end = CLEAN.start + CLEAN.days * DAY
    rois = []
    for uid, u in truth.users.items():
        if u.segment != "saas" or (u.churn_ts is not None) != churners:
            continue
        days = min(14.0, ((u.churn_ts or end) - u.signup_ts) / DAY)
        if days >= 3:
            rois.append(value[uid] / (price[uid] / 30 * days))
    return statistics.median(rois)


def test_churn_is_not_trivially_separable(truth: GroundTruth) -> None:
    churners = [u for u in truth.users.values() if u.churn_kind is not None]
    assert 0.15 <= truth.churn_rate() <= 0.35  # configured 0.25
    abrupt = sum(u.silent for u in churners) / len(churners)
    assert 0.05 <= abrupt <= 0.35
    assert all(u.silent == (u.decline_start_ts is None) for u in churners)
    assert any(u.reactivate_ts is not None for u in churners)
    # Some loyal users also go through a decline with a raised oracle.
    stays = [u for u in truth.users.values() if u.churn_kind is None]
    assert any(max(o for o in u.oracle if o is not None) > 0.2 for u in stays)


def test_oracle_is_higher_shortly_before_a_churn(truth: GroundTruth) -> None:
    before: list[float] = []
    others: list[float] = []
    for u in truth.users.values():
        for d, o in enumerate(u.oracle):
            if o is None:
                continue
            t = u.day_start(CLEAN.start, d)
            window = truth.horizon_days[u.segment] * DAY
            if churned_within(u, t, window, truth.label_modes[u.segment]):
                before.append(o)
            elif u.churn_ts is None:
                others.append(o)
        signup_day = int((u.signup_ts - CLEAN.start) // DAY)
        # signup_ts is UTC, the plan is in local days (at most one day apart)
        assert all(o is None for o in u.oracle[: max(0, signup_day - 1)])
        assert all(o is None or 0.0 <= o <= 1.0 for o in u.oracle)
    assert statistics.mean(before) > 4 * statistics.mean(others)


# --- churn kinds and the oracle ---------------------------------------------------------------

POPULATION = SimConfig(users=1500, days=60, seed=5)


@pytest.fixture(scope="module")
def population() -> GroundTruth:
    return ground_truth(POPULATION)


def test_course_churners_mostly_drop_out_silently(population: GroundTruth) -> None:
    def share(segment: str) -> float:
        kinds = [u.churn_kind for u in population.users.values() if u.segment == segment]
        churned = [k for k in kinds if k is not None]
        return churned.count("silent") / len(churned)

    assert 0.6 <= share("course") <= 0.8  # configured 0.7
    assert 0.02 <= share("saas") <= 0.2 and 0.02 <= share("docs") <= 0.2  # configured 0.1


def test_silent_dropouts_stop_all_events(clean: list[SimRecord], truth: GroundTruth) -> None:
    dropouts = {uid: u for uid, u in truth.users.items() if u.churn_kind == "silent"}
    with_decline = [u for u in dropouts.values() if u.decline_start_ts is not None]
    abrupt = [u for u in dropouts.values() if u.decline_start_ts is None]
    assert len(with_decline) >= 10 and len(abrupt) >= 2, "history too small to judge"
    assert all(u.decline_start_ts < u.churn_ts for u in with_decline)  # type: ignore[operator]
    last: dict[str, float] = {}
    for rec in clean:
        u = dropouts.get(rec.key or "")
        if u is None:
            continue
        assert u.churn_ts is not None
        # Nothing at all (not even a renewal) between the last activity and a return.
        assert rec.ts <= u.churn_ts or (u.reactivate_ts is not None and rec.ts >= u.reactivate_ts)
        if rec.ts <= u.churn_ts:
            last[rec.key or ""] = rec.ts
        if rec.ts == u.reactivate_ts:
            assert rec.topic in BEHAVIOUR  # a returner's first activity is its return
    for uid, u in dropouts.items():
        assert u.last_active_ts == u.churn_ts == last[uid]  # the dropout is its last activity
        assert u.cancel_ts is None and u.warning_start_ts is None


def test_declining_dropouts_show_frustration_first(
    clean: list[SimRecord], truth: GroundTruth
) -> None:
    """Course dropouts after a decline seek and abandon more in their last week than others."""
    seeks: dict[bool, list[int]] = defaultdict(list)
    abandoned: dict[bool, list[bool]] = defaultdict(list)
    for rec in clean:
        u = truth.users[rec.key or ""]
        if rec.topic != "behaviour.video-views" or rec.value is None:
            continue
        declining = u.churn_kind == "silent" and u.decline_start_ts is not None
        if declining and not u.churn_ts - 7 * DAY <= rec.ts < u.churn_ts:  # type: ignore[operator]
            continue
        if not declining and u.churn_kind is not None:
            continue
        seeks[declining].append(rec.value["seeks"])
        abandoned[declining].append(rec.value["watched_s"] < 0.3 * rec.value["duration_s"])
    assert statistics.mean(seeks[True]) > 2 * statistics.mean(seeks[False])
    assert statistics.mean(abandoned[True]) > 2 * statistics.mean(abandoned[False])


def _user(churn_ts: float | None, kind: str | None) -> UserTruth:
    return UserTruth(
        segment="course",
        utc_offset_h=0.0,
        signup_ts=0.0,
        churn_kind=kind,
        churn_ts=churn_ts,
        last_active_ts=churn_ts,
        decline_start_ts=None,
        cancel_ts=churn_ts if kind == "cancel" else None,
        reactivate_ts=None,
        warning_start_ts=None,
        roi_drop_ts=None,
        silent=kind is not None,
        oracle=[],
    )


@pytest.mark.parametrize(
    ("kind", "cancel", "inactivity", "either"),
    [("cancel", True, True, True), ("silent", False, True, True), (None, False, False, False)],
)
def test_churned_within_by_label_mode(
    kind: str | None, cancel: bool, inactivity: bool, either: bool
) -> None:
    u = _user(None if kind is None else 10 * DAY, kind)
    h = 7 * DAY
    assert churned_within(u, 5 * DAY, h, "cancel") is cancel
    assert churned_within(u, 5 * DAY, h, "inactivity") is inactivity
    assert churned_within(u, 5 * DAY, h, "either") is either
    # The window is (t, t + H]: a churn exactly at t is before it, one exactly at t + H inside.
    assert churned_within(u, 3 * DAY, h, "either") is either
    # The product's quiet-spell label aims at the same truth as "either".
    assert churned_within(u, 5 * DAY, h, "quiet") is either
    for mode in ("cancel", "inactivity", "either", "quiet"):
        assert not churned_within(u, 10 * DAY, h, mode)
        assert not churned_within(u, 2 * DAY, h, mode)
    with pytest.raises(ValueError):
        churned_within(u, 0.0, h, "never")


def _fork(params: ChurnParams, fork_day: int, seeds: tuple[int, int]) -> list[tuple[list, int]]:
    """Two course learners with the same hidden history up to `fork_day`, then own futures."""
    days = 60
    c = new_customer(0, "course", "fork", days)
    c.signup_day = 0
    rng = random.Random(1)
    for d in range(fork_day + 1):
        assert not step_day(c, d, rng, params), "churned before the fork: pick another seed"
    out = []
    for seed in seeds:
        twin, future = copy.deepcopy(c), random.Random(seed)
        for d in range(fork_day + 1, days):
            if step_day(twin, d, future, params):
                settle_churn(twin, future, days, params)
                break
        out.append((oracle_series(twin, params, days), twin.churn_day))
    return out


@pytest.mark.parametrize("fork_day", [3, 8, 12])
def test_oracle_does_not_look_past_its_day(fork_day: int) -> None:
    # Frequent declines, so that the fork falls inside one (seed 1 starts one on day 2).
    params = ChurnParams(base=0.01, onset=0.3, silent_share={"course": 0.7})
    (a, a_churn), (b, b_churn) = _fork(params, fork_day, (11, 12))
    assert a_churn != b_churn  # different futures...
    assert a[: fork_day + 1] == b[: fork_day + 1]  # ...same oracle up to the fork
    assert a[fork_day + 1 :] != b[fork_day + 1 :]
    # No cut at the sampled churn: the oracle on the churn day is a probability, not 1 or 0.
    assert a_churn is not None and 0.0 < a[a_churn] < 1.0  # type: ignore[operator]


def test_oracle_is_calibrated(population: GroundTruth) -> None:
    """Mean oracle over at-risk user-days equals the observed churn rate within the horizon.

    Only days whose whole horizon lies inside the period count (later churn is not simulated).
    Measured on this population: within 4 % pooled and 9 % per segment; tolerance 12 % / 25 %.
    """
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for u in population.users.values():
        h = population.horizon_days[u.segment]
        mode = population.label_modes[u.segment]
        for d, o in enumerate(u.oracle):
            if o is None or d + h > population.days:
                continue
            row = sums[u.segment]
            row[0] += 1
            row[1] += o
            row[2] += churned_within(u, u.day_start(population.start, d), h * DAY, mode)
    pooled = [sum(r[i] for r in sums.values()) for i in range(3)]
    assert pooled[2] > 1000
    assert pooled[1] == pytest.approx(pooled[2], rel=0.12)
    for segment, (_, expected, observed) in sums.items():
        assert expected == pytest.approx(observed, rel=0.25), segment


def test_oracle_counts_cancels_only_where_the_label_mode_does() -> None:
    def healthy(segment: str, silent_share: float) -> float | None:
        params = ChurnParams(base=0.002, onset=0.01, silent_share={segment: silent_share})
        c = new_customer(0, segment, "mode", 60)
        c.signup_day = 0
        return oracle_series(c, params, 60)[10]

    # SaaS counts cancels only (its default label mode); course counts either kind.
    assert healthy("saas", 0.5) == pytest.approx(0.5 * healthy("saas", 0.0), abs=1e-6)
    assert healthy("course", 0.7) == healthy("course", 0.0)


def test_roi_drop_lowers_value_of_planted_accounts(clean: list[SimRecord]) -> None:
    cfg = SimConfig(users=200, days=60, seed=2, roi_drop_fraction=0.5, segments=("saas",))
    truth = ground_truth(cfg)
    drops = {uid: u.roi_drop_ts for uid, u in truth.users.items() if u.roi_drop_ts is not None}
    assert drops
    value: dict[tuple[str, bool], list[float]] = defaultdict(list)
    for rec in generate(cfg):
        if rec.topic == "business.value" and rec.key in drops and rec.value is not None:
            value[rec.key, rec.ts >= drops[rec.key]].append(rec.value["value"])
    fell = [
        statistics.mean(value[uid, True]) < 0.6 * statistics.mean(value[uid, False])
        for uid in drops
        if value[uid, True] and value[uid, False]
    ]
    assert sum(fell) >= 0.8 * len(fell) > 0


# --- delivery faults --------------------------------------------------------------------------


def test_faults_cover_every_kind_and_match_the_parser(faulty: list[SimRecord]) -> None:
    expected = {
        "not_json",
        "missing_field",
        "bad_type",
        "out_of_range",
        "bad_timestamp",
        "bad_enum",
        "too_large",
        "empty",
        "rekey",
        "duplicate",
    }
    seen = {rec.expect.split(":")[0] for rec in faulty} - {"valid"}
    assert seen == expected
    assert any(r.raw and r.expect == "not_json" and _not_utf8(r.raw) for r in faulty)
    ts = [r.ts for r in faulty]
    assert all(a <= b for a, b in itertools.pairwise(ts))
    for rec in faulty:
        result = parse(KIND_BY_TOPIC[rec.topic], _body(rec))
        if rec.expect in ("valid", "rekey", "duplicate"):
            assert not isinstance(result, Invalid), (rec.expect, result)
        else:
            assert rec.value is None and rec.raw is not None
            assert isinstance(result, Invalid) and result.error == rec.expect


def test_rekeys_and_duplicates_are_well_formed(faulty: list[SimRecord]) -> None:
    seen: dict[str, dict[str, object]] = {}
    for rec in faulty:
        if rec.value is None:
            continue
        event_id = rec.value["event_id"]
        if rec.expect == "duplicate":
            assert seen[event_id] == rec.value  # an exact copy of an earlier delivery
            assert rec.key == rec.value["user_id"]
        else:
            assert event_id not in seen
            seen[event_id] = rec.value
            assert rec.key == (None if rec.expect == "rekey" else rec.value["user_id"])


def test_no_faults_without_bad_fraction(clean: list[SimRecord]) -> None:
    assert {r.expect for r in clean} == {"valid"}


BEHAVIOUR = {
    "behaviour.video-views",
    "behaviour.logins",
    "behaviour.integration-syncs",
    "behaviour.document-jobs",
}


def _not_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def test_a_run_that_continues_another_numbers_its_events_apart() -> None:
    # README "Start from your history": a history, then the same user ids from day 61 on.
    def ids(config: SimConfig) -> set[str]:
        return {r.value["event_id"] for r in generate(config) if r.value}

    first = SimConfig(users=20, days=10)
    later = SimConfig(users=20, days=10, start=first.start + 60 * 86400)
    assert ids(first) and not ids(first) & ids(later)
