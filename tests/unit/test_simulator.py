"""Customer simulator: determinism, ordering, contract validity, churn signals, faults, truth."""

from __future__ import annotations

import itertools
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
    active_days = sum(h is not None for u in truth.users.values() for h in u.hazard)
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
        if u.cancel_ts is not None and u.reactivate_ts is None and uid in last_behaviour:
            assert last_behaviour[uid] <= u.cancel_ts  # gone means silent


# --- the hidden churn process -----------------------------------------------------------------


def _last_14_days(
    records: list[SimRecord], truth: GroundTruth
) -> Iterator[tuple[str, bool, SimRecord]]:
    end = CLEAN.start + CLEAN.days * DAY
    for rec in records:
        assert rec.key is not None and rec.value is not None
        u = truth.users[rec.key]
        stop = u.cancel_ts if u.cancel_ts is not None else end
        if stop - 14 * DAY <= rec.ts < stop:
            yield rec.key, u.cancel_ts is not None, rec


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
        users[u.cancel_ts is not None, u.segment] += 1

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
        if u.segment != "saas" or (u.cancel_ts is not None) != churners:
            continue
        days = min(14.0, ((u.cancel_ts or end) - u.signup_ts) / DAY)
        if days >= 3:
            rois.append(value[uid] / (price[uid] / 30 * days))
    return statistics.median(rois)


def test_churn_is_not_trivially_separable(truth: GroundTruth) -> None:
    churners = [u for u in truth.users.values() if u.cancel_ts is not None]
    assert 0.15 <= truth.churn_rate() <= 0.35  # configured 0.25
    silent = sum(u.silent for u in churners) / len(churners)
    assert 0.05 <= silent <= 0.35
    assert any(u.reactivate_ts is not None for u in churners)
    # Some loyal users also go through stressful days with a raised hazard.
    stays = [u for u in truth.users.values() if u.cancel_ts is None]
    assert any(max(h for h in u.hazard if h is not None) > 0.05 for u in stays)


def test_hazard_is_higher_shortly_before_a_cancel(truth: GroundTruth) -> None:
    before: list[float] = []
    others: list[float] = []
    for u in truth.users.values():
        for d, h in enumerate(u.hazard):
            if h is None:
                continue
            t = CLEAN.start + d * DAY
            window = truth.horizon_days[u.segment] * DAY
            if u.cancel_ts is not None and t < u.cancel_ts <= t + window:
                before.append(h)
            elif u.cancel_ts is None:
                others.append(h)
        signup_day = int((u.signup_ts - CLEAN.start) // DAY)
        # signup_ts is UTC, the plan is in local days (at most one day apart)
        assert all(h is None for h in u.hazard[: max(0, signup_day - 1)])
        assert all(h is None or 0.0 <= h <= 1.0 for h in u.hazard)
    assert statistics.mean(before) > 4 * statistics.mean(others)


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


def _not_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False
