"""The soak's drills, each against a real broker, each ending in one accounted `Row`.

A drill produces records whose fate it knows (`soak_data.account`), applies its fault, waits
until the worker group has committed every input record (the worker commits a record only
after its state reached the changelog), and reconciles the changelog and the DLQ against
what was produced (`soak_live.tally_live`, `soak_reconcile.reconcile`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from soak_data import Accounting, Record, account, extreme_records, history
from soak_kafka import Location, committed, delete_records, lag, produce, read_topic
from soak_live import changelog_topic, early_labels, read_states, tally_live
from soak_reconcile import Seen, Tally, reconcile
from soak_workers import Worker

from churnstream.stream.contract.events import DAY_S
from churnstream.stream.contract.pseudonym import pseudonym
from churnstream.stream.contract.topics import INPUT_TOPICS, REKEYED
from churnstream.stream.devtools.kafka_local import LocalKafka
from churnstream.stream.devtools.observe import wait_until
from churnstream.stream.devtools.processes import ManagedProcess, spawn
from churnstream.stream.kafka.admin import create_topics
from churnstream.stream.settings import Settings

log = logging.getLogger("soak")
HERE = Path(__file__).resolve().parent
PSEUDONYM_KEY = "soak-pseudonym-key-" + "7" * 24
SKEW_S = 86400.0  # the worker's default max_future_skew_s
CATCH_UP_S = 300.0


@dataclass(frozen=True)
class Scale:
    """Sizes of one soak run (`--quick` shrinks them, `--long` stretches the rebalance drill)."""

    users: int = 200
    days: float = 6.0
    per_user_day: float = 15.0
    hot_per_day: int = 500
    kills: int = 5
    rebalance_s: float = 180.0
    rebalance_every_s: float = 20.0
    rebalance_rate: float = 150.0
    outage_records: int = 40_000
    outage_s: float = 30.0
    phase_records: int = 6000
    replay_records: int = 1_000_000
    live_extreme_records: int = 100_000


QUICK = Scale(
    users=40,
    days=3.0,
    per_user_day=10.0,
    hot_per_day=500,
    kills=2,
    rebalance_s=45.0,
    rebalance_rate=60.0,
    outage_records=5000,
    outage_s=10.0,
    phase_records=1500,
    replay_records=20_000,
    live_extreme_records=5000,
)


@dataclass
class Row:
    """One drill's line of RELIABILITY.md."""

    name: str
    what: str
    tally: Tally | None = None
    early: int | None = None
    rss_start: float | None = None
    rss_end: float | None = None
    seconds: float = 0.0
    caught_up: bool = True
    records_in: int | None = None  # shown when there is no tally (a drill cut short)
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            self.error is None and self.caught_up and self.tally is not None and self.tally.passed
        )


class Soak:
    """Shared by the drills: the broker, a work directory, the sizes."""

    def __init__(
        self, bootstrap: str, kafka: LocalKafka | None, workdir: Path, scale: Scale
    ) -> None:
        self.bootstrap = bootstrap
        self.kafka = kafka
        self.workdir = workdir
        self.scale = scale
        self.now = time.time()
        # Event time of the histories: the days before now, so none is ahead of the wall clock.
        self.start = self.now - scale.days * DAY_S - 3600

    def topics(self, prefix: str) -> None:
        settings = Settings.from_env(
            {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "CHURNSTREAM_TOPIC_PREFIX": prefix}
        )
        asyncio.run(create_topics(settings, bootstrap=self.bootstrap))

    def worker(self, drill: str, name: str, env: dict[str, str] | None = None) -> Worker:
        prefix = f"{drill}."
        return Worker(
            f"{drill}-{name}", self.bootstrap, prefix, f"soak-{drill}", self.workdir / drill / name,
            env,
        )  # fmt: skip

    def caught_up(self, workers: list[Worker], app_id: str, prefix: str, timeout: float) -> bool:
        """Wait until the group committed every input record (twice in a row: a re-keyed
        record's end offset may be read just before the raw record's commit); False on timeout."""
        topics = _inputs(prefix)
        zeros = 0

        def done() -> bool:
            nonlocal zeros
            for w in workers:
                if w.running():
                    w.sample_rss()
                else:
                    w.check_alive()
            zeros = zeros + 1 if lag(self.bootstrap, app_id, topics)[0] == 0 else 0
            return zeros >= 2

        try:
            wait_until(done, timeout, "catch-up", every=1.0)
        except TimeoutError:
            return False
        return True


def _inputs(prefix: str) -> list[str]:
    """Every topic the process agent consumes: the six contract topics and churn.rekeyed."""
    return [prefix + t for t in (*INPUT_TOPICS.values(), REKEYED)]


def _prefixed(prefix: str, records: list[Record]) -> list[Record]:
    return [(prefix + t, k, v) for t, k, v in records]


def _rss(workers: list[Worker]) -> tuple[float, float]:
    first = max((w.rss_first or 0.0) for w in workers)
    last = max(w.rss_last for w in workers)
    return first, last


def _finish(
    soak: Soak,
    row: Row,
    drill: str,
    locations: list[Location],
    acct: Accounting,
    workers: list[Worker],
    plausible_until: float,
    adjust: Callable[[object, dict[str, Seen | None]], None] | None = None,
) -> None:
    """Reconcile a live drill and fill its row (`adjust`: see `tally_live`)."""
    tally, dlq = tally_live(
        soak.bootstrap, f"{drill}.", f"soak-{drill}", locations, acct, adjust=adjust
    )
    row.tally = tally
    if not row.caught_up:
        behind, _ = lag(soak.bootstrap, f"soak-{drill}", _inputs(drill + "."))
        row.notes.append(f"when read back the group was {behind:,} input records behind")
    row.early = early_labels(soak.bootstrap, f"{drill}.", plausible_until)
    row.rss_start, row.rss_end = _rss(workers)
    early_events = sum(w.total("churnstream_events_released_early_total") for w in workers)
    row.notes.append(
        f"events released early (metric): {early_events:.0f}; DLQ by error: "
        f"{dict(dlq.errors) or '{}'}; DLQ records repeated: {dlq.repeats}"
    )
    if dlq.unmatched:
        row.notes.append(f"DLQ records matching no produced record: {dlq.unmatched}")


@contextlib.contextmanager
def _stopping(workers: list[Worker]) -> Iterator[None]:
    """Every worker of the list (which may grow) is stopped on the way out."""
    try:
        yield
    finally:
        for w in workers:
            w.stop()


def _consumed(worker: Worker) -> float:
    worker.check_alive()
    return worker.metric("churnstream_records_consumed_total")


def _chunks(items: list[Record], n: int) -> list[list[Record]]:
    size = -(-len(items) // n)
    return [items[i : i + size] for i in range(0, len(items), size)]


# -- a. kill -9 loop --------------------------------------------------------------------------


def kill_loop(soak: Soak) -> Row:
    sc = soak.scale
    drill, prefix = "kill9", "kill9."
    row = Row(
        "a. kill -9 loop",
        f"{sc.kills} x SIGKILL mid-batch, pseudonymisation on, {sc.users} users x "
        f"{sc.days:g} d + 1 user with {sc.hot_per_day} events/day",
    )
    soak.topics(prefix)
    key = PSEUDONYM_KEY.encode()
    records = history(
        users=sc.users, days=sc.days, per_user_day=sc.per_user_day, start=soak.start, seed=1,
        hot_per_day=sc.hot_per_day,
    )  # fmt: skip
    acct = account(records, not_after=soak.now + SKEW_S, state_key=lambda u: pseudonym(u, key))
    worker = soak.worker(drill, "w", {"CHURNSTREAM_PSEUDONYM_KEY": PSEUDONYM_KEY})
    locations: list[Location] = []
    chunks = _chunks(_prefixed(prefix, records), sc.kills + 1)
    with _stopping([worker]):
        for n, chunk in enumerate(chunks):
            worker.start()
            locations += produce(soak.bootstrap, chunk)
            if n == len(chunks) - 1:
                break
            # Each record is consumed twice (raw, then re-keyed): kill somewhere in between.
            at = len(chunk) * (0.5 + n / sc.kills)
            wait_until(
                lambda w=worker, k=at: _consumed(w) >= k, 180, "progress before the kill", every=0.5
            )
            worker.kill()
            log.info("a: kill %d/%d after %.0f records consumed", n + 1, sc.kills, at)
        row.caught_up = soak.caught_up([worker], f"soak-{drill}", prefix, CATCH_UP_S)
        _finish(soak, row, drill, locations, acct, [worker], soak.now)
    if row.tally is not None and row.tally.worst:
        raw = {pseudonym(u, key): u for u in {r[1].decode() for r in records if r[1]}}
        named = ", ".join(f"{raw.get(u, u)} {d:+d}" for u, d in row.tally.worst)
        row.notes.append(f"the same users by their raw ids: {named}")
    return row


# -- b. workers added and removed under load ---------------------------------------------------


def rebalance(soak: Soak) -> Row:
    sc = soak.scale
    drill, prefix = "scale", "scale."
    row = Row(
        "b. rebalances under load",
        f"3 workers, one removed (SIGTERM) or added every {sc.rebalance_every_s:g} s for "
        f"{sc.rebalance_s:g} s, {sc.rebalance_rate:g} records/s",
    )
    soak.topics(prefix)
    users = sc.users * 2
    total = int(sc.rebalance_rate * sc.rebalance_s)
    records = history(
        users=users, days=sc.days, per_user_day=total / (users * sc.days), start=soak.start,
        seed=2,
    )  # fmt: skip
    pool = [soak.worker(drill, f"w{i}") for i in range(3)]
    sent: list[Location] = []
    done = threading.Event()
    failure: list[BaseException] = []

    def producer() -> None:
        try:
            sent.extend(
                produce(
                    soak.bootstrap, _prefixed(prefix, records), rate=sc.rebalance_rate,
                    stop=done.is_set,
                )
            )  # fmt: skip
        except BaseException as exc:  # reported by the drill, not lost in the thread
            failure.append(exc)
        finally:
            done.set()

    toggles = 0
    with _stopping(pool):
        for w in pool:
            w.start()
        thread = threading.Thread(target=producer, name="soak-producer", daemon=True)
        thread.start()
        ends = time.monotonic() + sc.rebalance_s
        while time.monotonic() < ends and not done.is_set():
            # The fault schedule: wakes at the next toggle, or at once if the producer ends.
            done.wait(min(sc.rebalance_every_s, max(ends - time.monotonic(), 0)))
            if done.is_set() or time.monotonic() >= ends:
                break
            running = [w for w in pool if w.running()]
            for w in running:
                w.sample_rss()
            if len(running) >= 3:
                running[toggles % len(running)].stop()
                log.info("b: removed a worker (%d left)", len(running) - 1)
            else:
                pool.append(soak.worker(drill, f"w{len(pool)}").start())
                log.info("b: added a worker (%d running)", len(running) + 1)
            toggles += 1
        done.set()
        thread.join(timeout=600)
        if failure:
            raise failure[0]
        alive = [w for w in pool if w.running()]
        row.caught_up = soak.caught_up(alive, f"soak-{drill}", prefix, CATCH_UP_S)
        acct = account(records[: len(sent)], not_after=soak.now + SKEW_S)
        _finish(soak, row, drill, sent, acct, pool, soak.now)
    rebalances = sum(w.total("churnstream_rebalances_total") for w in pool)
    row.notes.append(f"{toggles} workers added or removed, {rebalances:.0f} rebalances seen")
    return row


# -- c. the broker killed while the worker lags -----------------------------------------------


def broker_outage(soak: Soak) -> Row:
    sc = soak.scale
    drill, prefix = "outage", "outage."
    row = Row(
        "c. broker killed",
        f"SIGKILL to the broker for {sc.outage_s:g} s while the worker is "
        f"{sc.outage_records:,} records behind",
    )
    kafka = soak.kafka
    if kafka is None:
        row.error = "not run: the broker is not the soak's own (KAFKA_BOOTSTRAP_SERVERS is set)"
        return row
    soak.topics(prefix)
    users = sc.users * 2
    records = history(
        users=users, days=sc.days, per_user_day=sc.outage_records / (users * sc.days),
        start=soak.start, seed=3,
    )  # fmt: skip
    acct = account(records, not_after=soak.now + SKEW_S)
    worker = soak.worker(drill, "w", {"CHURNSTREAM_OUTPUT_TIMEOUT_S": "5"})
    with _stopping([worker]):
        worker.start()
        locations = produce(soak.bootstrap, _prefixed(prefix, records))
        wait_until(
            lambda: _consumed(worker) >= len(records) // 4, 180, "a quarter consumed", every=0.5
        )
        pid = kafka.pid
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)
        wait_until(lambda: kafka.pid is None, 30, "the broker's exit", every=0.2)
        log.info("c: broker killed; down for %.0f s", sc.outage_s)
        back_at = time.monotonic() + sc.outage_s
        died = ""
        try:
            # The outage lasts its full length; the worker must stay up through it.
            wait_until(
                lambda: time.monotonic() >= back_at and worker.check_alive(), sc.outage_s + 30,
                "end of the outage", every=1.0,
            )  # fmt: skip
        except RuntimeError as exc:
            died = str(exc).splitlines()[0]
        kafka.start(timeout=180)
        down = time.monotonic() - back_at + sc.outage_s
        log.info("c: broker back after %.0f s", down)
        row.notes.append(f"broker down {down:.0f} s (killed to answering again)")
        if died or not worker.running():
            row.notes.append(f"worker exited during the outage ({died}); restarted")
            worker.start()
        row.caught_up = soak.caught_up([worker], f"soak-{drill}", prefix, CATCH_UP_S)
        _finish(soak, row, drill, locations, acct, [worker], soak.now)
        retries = worker.total("churnstream_output_send_retries_total")
        row.notes.append(f"output batches sent again: {retries:.0f}")
    return row


# -- d. retention gap -------------------------------------------------------------------------


def retention_gap(soak: Soak) -> Row:
    sc = soak.scale
    drill, prefix = "gap", "gap."
    logins = prefix + INPUT_TOPICS["logins"]
    row = Row(
        "d. retention gap",
        "delete-records below the group's offset on two login partitions (one left idle, one "
        "with records after the gap) while the worker is stopped",
    )
    soak.topics(prefix)
    span = sc.days / 3
    per_day = sc.phase_records / (sc.users * span)
    phases = [
        history(
            users=sc.users, days=span, per_user_day=per_day, start=soak.start + k * span * DAY_S,
            seed=40 + k, phase=f"p{k}",
            kinds=("video_views", "integration_syncs", "document_jobs", "value") if k == 2
            else ("logins", "video_views", "integration_syncs", "document_jobs", "value"),
        )
        for k in range(3)
    ]  # fmt: skip
    worker = soak.worker(drill, "w")
    app_id = f"soak-{drill}"
    with _stopping([worker]):
        worker.start()
        locations = produce(soak.bootstrap, _prefixed(prefix, phases[0]))
        if not soak.caught_up([worker], app_id, prefix, CATCH_UP_S):
            raise RuntimeError("phase 1 not caught up")
        worker.stop()
        locations += produce(soak.bootstrap, _prefixed(prefix, phases[1]))
        done = committed(soak.bootstrap, app_id, logins)
        ends = {
            p: max([o + 1 for t, q, o in locations if t == logins and q == p] or [0])
            for p in (0, 1)
        }
        cut = {0: ends[0], 1: done[1] + (ends[1] - done[1]) // 2}
        for p, before in cut.items():
            delete_records(soak.bootstrap, logins, p, before)
        deleted = {
            i for i, (t, p, o) in enumerate(locations)
            if t == logins and p in cut and done[p] <= o < cut[p]
        }  # fmt: skip
        log.info(
            "d: deleted %d unprocessed records (committed %s, cut %s)", len(deleted), done, cut
        )
        worker.start()
        locations += produce(soak.bootstrap, _prefixed(prefix, phases[2]))
        row.caught_up = soak.caught_up([worker], app_id, prefix, 180.0)
        records = [r for ph in phases for r in ph]
        keep = [i for i in range(len(records)) if i not in deleted]
        acct = account([records[i] for i in keep], not_after=soak.now + SKEW_S)
        # Deleted records cannot reach any worker: in, but written off (not per user, since
        # the stuck check looks at each user's newest event that still exists).
        acct.expected.records_in += len(deleted)
        acct.expected.written_off += len(deleted)
        _finish(soak, row, drill, [locations[i] for i in keep], acct, [worker], soak.now)
        expired = worker.total("churnstream_input_records_expired_total")
        behind, gone = lag(soak.bootstrap, app_id, _inputs(prefix))
        row.notes.append(
            f"{len(deleted)} records produced and deleted by the drill before the worker read "
            f"them (written off); the worker counted {expired:.0f} input records expired"
        )
        if gone:
            row.notes.append(
                f"the group's committed offset stays below the log start ({gone} records that "
                "cannot be read any more): lag tools that subtract the committed offset show "
                "it behind for good"
            )
        if behind:
            row.notes.append(f"group still {behind} readable records behind after 180 s")
    return row


# -- e. a corrupt changelog value -------------------------------------------------------------


def corrupt_changelog(soak: Soak) -> Row:
    sc = soak.scale
    drill, prefix = "corrupt", "corrupt."
    app_id = f"soak-{drill}"
    row = Row(
        "e. corrupt changelog value",
        "3 users' changelog values replaced (random bytes, a cut value, a bad header) while "
        "the worker is stopped; restart and more events for them",
    )
    soak.topics(prefix)
    half = sc.days / 2
    per_day = sc.phase_records / (sc.users * half)
    first, second = (
        history(users=sc.users, days=half, per_user_day=per_day,
                start=soak.start + k * half * DAY_S, seed=50 + k, phase=f"p{k}")
        for k in range(2)
    )  # fmt: skip
    worker = soak.worker(drill, "w")
    with _stopping([worker]):
        worker.start()
        locations = produce(soak.bootstrap, _prefixed(prefix, first))
        if not soak.caught_up([worker], app_id, prefix, CATCH_UP_S):
            raise RuntimeError("phase 1 not caught up")
        worker.stop()
        before = read_states(soak.bootstrap, app_id)
        raw = {r.key: r.value for r in read_topic(soak.bootstrap, changelog_topic(app_id))}
        victims = sorted(u for u, s in before.items() if s is not None and s.count > 0)[:3]
        garbage = [os.urandom(40), raw[victims[1].encode()][:10], b"\x02" + b"\xff" * 24]
        produce(
            soak.bootstrap,
            [
                (changelog_topic(app_id), u.encode(), g)
                for u, g in zip(victims, garbage, strict=True)
            ],
        )
        log.info("e: corrupted the changelog values of %s", victims)
        worker.start()
        locations += produce(soak.bootstrap, _prefixed(prefix, second))
        row.caught_up = soak.caught_up([worker], app_id, prefix, CATCH_UP_S)
        acct = account(first + second, not_after=soak.now + SKEW_S)

        def write_off(dlq: object, states: dict[str, Seen | None]) -> None:
            # A value the drill destroyed is the drill's loss once it is quarantined.
            for user in set(victims) & set(getattr(dlq, "quarantined", [])):
                seen = before[user]
                assert seen is not None
                acct.expected.write_off(user, seen.count)

        tally, dlq = tally_live(soak.bootstrap, prefix, app_id, locations, acct, adjust=write_off)
        row.tally = tally
        row.early = early_labels(soak.bootstrap, prefix, soak.now)
        row.rss_start, row.rss_end = _rss([worker])
        quarantined = worker.total("churnstream_state_quarantined_total")
        row.notes.append(
            f"corrupted {len(victims)}, quarantined (metric) {quarantined:.0f}, corrupt_state "
            f"DLQ records for them: {len(set(victims) & set(dlq.quarantined))}; DLQ by error: "
            f"{dict(dlq.errors) or '{}'}"
        )
    return row


# -- f. extreme records -----------------------------------------------------------------------


def _jsonl_writer(path: Path, records: Iterator[Record]) -> Iterator[Record]:
    """Pass `records` through while writing them as a replay file (`raw_b64`: any bytes)."""
    with path.open("wb") as fh:
        for topic, key, value in records:
            line = {
                "topic": topic,
                "key": None if key is None else key.decode("utf-8", "replace"),
                "raw_b64": None if value is None else base64.b64encode(value).decode(),
            }
            fh.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
            yield topic, key, value


@dataclass
class ReplayRun:
    """The offline drill while its `replay` child runs (alongside the live drills)."""

    row: Row
    acct: Accounting
    proc: ManagedProcess
    path: Path
    out: Path
    began: float
    wrote_s: float
    expire_before: float  # users silent since before this are removed by the retention


def start_extreme_replay(soak: Soak) -> ReplayRun:
    """Write the file, account for it, and start `replay` over it in a child process: at ~1k
    records/s on a busy 2-core machine a million records take long enough to run beside the
    live drills rather than before them."""
    sc = soak.scale
    row = Row(
        "f1. extreme records, replay",
        f"{sc.replay_records:,} generated records (extreme numbers, timestamps, ids, "
        "encodings, re-sent copies) through `replay` (offline), beside the live drills",
    )
    began = time.monotonic()
    path = soak.workdir / "extreme.jsonl"
    start = soak.now - 2.5 * DAY_S
    gen = extreme_records(sc.replay_records, start=start, days=2.4, now=soak.now, seed=7)
    acct = account(_jsonl_writer(path, gen), not_after=None, keep_ids=False)
    log.info("f1: %s records written; replay running", f"{acct.expected.records_in:,}")
    out = soak.workdir / "replay-out.json"
    argv = [sys.executable, str(HERE / "replay_child.py"), str(path), str(out),
            "--plausible-until", str(soak.now + 3600)]  # fmt: skip
    proc = spawn(
        "replay", argv, os.environ, soak.workdir / "replay.log", cwd=HERE, with_parent=True
    )
    retention_s = Settings.from_env({}).user_retention_days * DAY_S
    expire_before = start + 2.4 * DAY_S - retention_s
    return ReplayRun(row, acct, proc, path, out, began, time.monotonic() - began, expire_before)


def _when(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, ValueError, OSError):
        return str(ts)


def finish_extreme_replay(run: ReplayRun, timeout: float) -> Row:
    """The offline drill's row once its child ended, or `timeout` s after the drill began."""
    row = run.row
    left = max(timeout - (time.monotonic() - run.began), 1.0)
    try:
        wait_until(lambda: not run.proc.running(), left, "end of the replay", every=2.0)
    except TimeoutError:
        run.proc.kill()
        row.error = f"replay did not finish in {time.monotonic() - run.began:.0f} s"
        row.records_in = run.acct.expected.records_in
        row.seconds = time.monotonic() - run.began
        lines = [x for x in run.proc.log_tail(5).splitlines() if x.startswith("{")]
        if lines:
            last = orjson.loads(lines[-1])
            row.early = last["early"]
            row.notes.append(
                f"by then: {last['records']:,} records in {last['seconds']:.0f} s, watermark "
                f"{_when(last['watermark'])}, {last['users']:,} users in the store, results "
                f"{last['results']}"
            )
        return row
    # Writing the file plus the replay (not the time it then waited for the live drills).
    row.seconds = run.wrote_s
    if run.proc.popen.returncode != 0:
        row.error = f"replay exited {run.proc.popen.returncode}: {run.proc.log_tail(1)}"
        return row
    res = orjson.loads(run.out.read_bytes())
    row.seconds += res["seconds"]
    states = {u: Seen(c, clock) for u, (c, clock) in res["users"].items()}
    # A user whose newest event is older than the retention (one event dated in 2000, say) is
    # removed by design when event time passes it (users_expired_total): not a loss.
    expected = run.acct.expected
    expired = [
        u for u, ts in expected.last_ts.items() if ts < run.expire_before and u not in states
    ]
    for user in expired:
        expected.write_off(user, expected.per_user.get(user, 0))
    if expired:
        row.notes.append(
            f"{len(expired)} users whose newest event is older than user_retention_days "
            "expired by design (their events written off)"
        )
    invalid = res["results"].get("invalid", 0)
    row.tally = reconcile(expected, states, {}, invalid)
    row.early = res["early"]
    row.rss_start, row.rss_end = res["rss_start_mib"], res["rss_end_mib"]
    row.notes.append(
        f"replay: {res['seconds']:.0f} s, results {res['results']}; invalid expected "
        f"{run.acct.expected.invalid:,} and counted {invalid:,} (replay has no DLQ: the invalid "
        f"count stands for it); by error {res['invalid_by_error']}"
    )
    run.path.unlink()
    return row


def extreme_live(soak: Soak) -> Row:
    sc = soak.scale
    drill, prefix = "extreme", "extreme."
    row = Row(
        "f2. extreme records, live",
        f"{sc.live_extreme_records:,} generated records of the same kinds through a live worker",
    )
    soak.topics(prefix)
    start = soak.now - 2.5 * DAY_S
    records = list(
        extreme_records(sc.live_extreme_records, start=start, days=2.4, now=soak.now, seed=8)
    )
    acct = account(records, not_after=time.time() + SKEW_S)
    worker = soak.worker(drill, "w")
    with _stopping([worker]):
        worker.start()
        locations = produce(soak.bootstrap, _prefixed(prefix, records))
        log.info("f2: %s records produced", f"{len(locations):,}")
        row.caught_up = soak.caught_up([worker], f"soak-{drill}", prefix, CATCH_UP_S)
        # As in f1: a user whose newest event is older than the retention (one login dated in
        # 2000, say) is removed by design once event time passes it; live too, since daily rows
        # wait no longer behind such a user's first boundary while the stream runs on.
        retention_s = Settings.from_env({}).user_retention_days * DAY_S
        expire_before = start + 2.4 * DAY_S - retention_s

        def expired(dlq: object, states: dict[str, Seen | None]) -> None:
            gone = [
                u
                for u, ts in acct.expected.last_ts.items()
                if ts < expire_before and states.get(u) is None
            ]
            for user in gone:
                acct.expected.write_off(user, acct.expected.per_user.get(user, 0))
            if gone:
                row.notes.append(
                    f"{len(gone)} users whose newest event is older than user_retention_days "
                    "expired by design (their events written off)"
                )

        _finish(soak, row, drill, locations, acct, [worker], soak.now + 3600, adjust=expired)
    return row


# The drills run one after another, by the letter of their row (f1, the replay, runs beside).
DRILLS: dict[str, Callable[[Soak], Row]] = {
    "a": kill_loop,
    "b": rebalance,
    "c": broker_outage,
    "d": retention_gap,
    "e": corrupt_changelog,
    "f": extreme_live,
}
