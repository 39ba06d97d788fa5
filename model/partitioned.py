"""Replay with users partitioned over processes (`replay --jobs N --by-user`).

The coordinator's reader parses every record once and hands each process (a `Part`) the event
time and kind of every record and the records of its users (a stable hash of the user id), so
every process feeds every valid event's time to its own watermark and sees the same event-time
progress (lateness, boundaries, expiry), and parses and applies only its users' events. What
couples users happens when the watermark reaches a day boundary B, in lockstep with the
coordinator (one exchange per boundary), which is also the one learner:

- the processes send the labels due before B; the coordinator learns them, with those of every
  process, in the order one process holding every user releases them (`learning_order`), and
  answers with the snapshots it installed (`Replay` installs them into its scorer: after every
  `snapshot_every` labels, and the model as of B while the installed one lags the labels); the
  processes install the same, then make their users' rows as of B;
- right after the rows they send the labels due before the watermark (as `Replay` releases
  them then), which the coordinator learns while the processes go on with the next events;
- a boundary's churn_risk alerts carry their percentile among all of its daily scores: the
  processes send their sorted scores with the next exchange and the coordinator fills it in;
- outputs carry a sort key (global event number, stage, boundary, user), and the coordinator
  writes them in key order, the order one process writes them. An event score's model is the
  newest after the labels released with the last rows: its record is worked out at the next
  exchange, once the snapshots are in (nothing decides on it).

So `--jobs 1`, `--jobs N` and `Replay` give the same alerts, scores, report, states and models
(tests/unit/model/test_replay_partitioned.py: late, too late and out-of-order events,
lifecycle, duplicates, invalid records). Where `Replay` can differ: it releases a label at the
first event whose watermark passes its due time, this only at a boundary's steps; the two meet
when due times are boundaries (label delays of whole days) and the watermark does not stop
exactly on one. And a late event that makes rows of a boundary already passed (a user new or
back) makes `Replay` install the newest models if they lag its labels. In both cases only
event scores read another model. Not supported: a daily alert budget (its pick compares every
user's candidates; `supported` says so).

Here the coordinator (`PartitionedReplay`, the learner) and a process's main; the reader and
its `Chunk` in model/partitioned_input.py; a process's users (`Part`) in
model/partitioned_part.py.
"""

from __future__ import annotations

import contextlib
import gc
import math
import multiprocessing
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from operator import itemgetter
from typing import IO, Any

import orjson

from churnstream.model.alert_policy import percentile
from churnstream.model.alerts import AlertPolicy
from churnstream.model.engine import EngineConfig
from churnstream.model.evaluation import Truth
from churnstream.model.labels import Example
from churnstream.model.partitioned_input import chunks, read_chunks
from churnstream.model.partitioned_part import Item, Learn, Part
from churnstream.model.replay import MemoryRepository, Replay, _Segment
from churnstream.model.replay_input import Admit, ReplayRecord
from churnstream.model.user_record import UserRecord


def supported(alerts: AlertPolicy) -> bool:
    """Whether a replay with these alerts can be partitioned (no daily budget)."""
    return not alerts.config.daily_budget


def learning_order(
    released: Iterable[list[Example]], delay_s: Callable[[str], float]
) -> list[Example]:
    """The examples the processes released together (each list in its process's release
    order), in the order one process holding every user releases them: users by their
    earliest due time (made_at + the segment's label delay) then id, as `DueIndex` pops them,
    each user's examples together and by day (`PendingLabels.due`)."""
    keyed = []
    for examples in released:
        user, first = None, 0.0
        for e in examples:
            if e.user_id != user:  # a user's examples come together, earliest first
                user, first = e.user_id, e.made_at + delay_s(e.segment)
            keyed.append(((first, e.user_id, e.made_at), e))
    keyed.sort(key=itemgetter(0))
    return [e for _, e in keyed]


class PartitionedReplay(Replay):
    """`Replay`'s interface (`run`, `report`, `states`, `repo`, `trainer`) over `jobs`
    processes; the coordinator runs here."""

    def __init__(
        self,
        config: EngineConfig,
        alerts: AlertPolicy,
        *,
        jobs: int = 1,
        max_bytes: int = 65536,
        snapshot_every: int = 500,
        scores_out: IO[bytes] | None = None,
        alerts_out: IO[bytes] | None = None,
        wall_clock: Callable[[], float] | None = None,
        truth: Truth | None = None,
        admit: Admit | None = None,
        progress_every: int = 10000,
    ) -> None:
        if not supported(alerts):
            raise ValueError("a daily alert budget compares all users: not partitioned")
        # What this `Replay` (the report, the learner) and every `Part` are built with.
        common: dict[str, Any] = {
            "max_bytes": max_bytes,
            "snapshot_every": snapshot_every,
            "wall_clock": wall_clock,
            "truth": truth,
        }
        super().__init__(config, alerts, **common)
        self.jobs = jobs
        self.policy = alerts
        self.scores_out = scores_out
        self.alerts_out = alerts_out
        self._part_kw = {**common, "scores": scores_out is not None}
        self.admit = admit
        self.progress_every = progress_every  # records read between `progress` calls
        self.workers_cpu_s = 0.0  # CPU seconds of the processes (all, and the busiest)
        self.busiest_cpu_s = 0.0
        # Per segment, the latest due time of the labels learned (`Detector.released_until`
        # of one process holding every user: every label released is learned at once).
        self.released_until: dict[str, float] = {}
        self._installs: list[bytes] = []  # snapshots published since the last answer

    # -- the coordinator ----------------------------------------------------------------------

    def _step(self, messages: Sequence[tuple[str, Any]]) -> tuple[list[bytes], list[bytes]] | None:
        """One step of every process: "after" (the labels released after a boundary's rows:
        learned now, while the processes go on; no answer) or "learn" (outputs, a boundary's
        scores and the labels due before it: answered with the snapshots to install)."""
        kinds = {kind for kind, _ in messages}
        if len(kinds) != 1 or not kinds <= {"after", "learn"}:
            raise RuntimeError(f"partitions out of step: {sorted(kinds)}")
        delay = self.config.model.label_delay_s
        if kinds == {"after"}:
            self._learn_all(learning_order((m[1] for m in messages), delay))
            return None
        learns: list[Learn] = [payload for _, payload in messages]
        day_scores: dict[str, list[float]] = {}
        for m in learns:
            for segment, scores in m.day_scores.items():
                day_scores.setdefault(segment, []).extend(scores)
        for scores in day_scores.values():
            scores.sort()
        self._write([m.scores for m in learns], [m.alerts for m in learns], day_scores)
        after, self._installs = self._installs, []
        self._learn_all(learning_order((m.examples for m in learns), delay))
        # Rows follow (a boundary, not the end): the model as of it, as `Replay._model_as_of`.
        if learns[0].rows and not self.scorer.covers(self.released_until):
            for segment, model in self.trainer.models.items():
                current = self.scorer.models.get(segment)
                if current is None or model.version > current.version:
                    self._install(segment)
        before, self._installs = self._installs, []
        return after, before

    # -- the learner: one for every process -----------------------------------------------------

    def _learn_all(self, examples: list[Example]) -> None:
        """`Replay._drain`'s learning of the labels released together."""
        last = {e.segment: i for i, e in enumerate(examples)}
        delay = self.config.model.label_delay_s
        until = self.released_until
        for i, example in enumerate(examples):
            self._learn(example, closes=last[example.segment] == i)
            due = example.made_at + delay(example.segment)
            if due > until.get(example.segment, -math.inf):
                until[example.segment] = due

    def _install(self, segment: str) -> None:
        """Install here (to know what the processes' scorers hold) and for the processes."""
        snapshot = self.trainer.snapshot(segment)
        self.scorer.install_snapshot(snapshot)
        self._installs.append(snapshot)

    def _write(
        self,
        scores: list[list[Item]],
        alerts: list[list[Item]],
        day_scores: dict[str, list[float]] | None = None,
    ) -> None:
        for out, parts in ((self.scores_out, scores), (self.alerts_out, alerts)):
            items = parts[0] if len(parts) == 1 else sorted(chain(*parts), key=itemgetter(0))
            for _, line in items:
                if type(line) is dict:  # a boundary's alert: the percentile among its rows
                    seg_scores = (day_scores or {}).get(line["segment"])
                    if seg_scores:
                        line["percentile"] = percentile(seg_scores, float(line["value"]))
                    line = orjson.dumps(line) + b"\n"
                if out is not None:
                    out.write(line)  # type: ignore[arg-type]

    # -- driving ------------------------------------------------------------------------------

    def run(
        self, records: Iterable[ReplayRecord], progress: Callable[[int], None] | None = None
    ) -> dict[str, Any]:
        if self.jobs == 1:
            part = self._part(0, lambda kind, payload: self._step([(kind, payload)]))
            for read, rec in enumerate(records, 1):
                part.feed(rec)
                if progress is not None and read % self.progress_every == 0:
                    progress(read)
            part.finish()
            results = [part.result()]
            results[0]["cpu_s"] = 0.0  # this process's own
            self._write([results[0]["items"][0]], [results[0]["items"][1]])
        else:
            results = self._run_processes(records, progress)
        self._merge(results)
        return self.report()

    def _part(self, index: int, sync: Callable[[str, Any], Any]) -> Part:
        return Part(
            self.config,
            self.policy,
            index=index,
            count=self.jobs,
            sync=sync,
            admit=self.admit,
            **self._part_kw,  # type: ignore[arg-type]
        )

    def _run_processes(
        self, records: Iterable[ReplayRecord], progress: Callable[[int], None] | None = None
    ) -> list[dict[str, Any]]:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        queues = [ctx.Queue(maxsize=8) for _ in range(self.jobs)]
        conns, procs = [], []
        # The processes would otherwise traverse (and so copy) every object of this heap at
        # their first full collection.
        gc.freeze()
        try:
            for index in range(self.jobs):
                here, there = ctx.Pipe()
                proc = ctx.Process(
                    target=_part_main, args=(self, index, there, queues[index]), daemon=True
                )
                proc.start()
                there.close()
                conns.append(here)
                procs.append(proc)
        finally:
            gc.unfreeze()
        failed: list[Exception] = []
        feeder = threading.Thread(
            target=read_chunks,
            args=(records, queues, failed, progress),
            kwargs={
                "every": self.progress_every,
                "max_bytes": self._part_kw["max_bytes"],
                "admit": self.admit,
            },
            daemon=True,
        )
        feeder.start()
        done = False
        try:
            while True:
                try:
                    messages = [conn.recv() for conn in conns]
                except EOFError:
                    raise RuntimeError("a replay process ended without a word (killed?)") from None
                for kind, payload in messages:
                    if kind == "error":
                        raise RuntimeError(f"a replay process failed:\n{payload}")
                if all(kind == "end" for kind, _ in messages):
                    if failed:  # the input broke off: what was fed is not the history
                        raise failed[0]
                    results = [payload for _, payload in messages]
                    self._write([r["items"][0] for r in results], [r["items"][1] for r in results])
                    done = True
                    return results
                reply = self._step(messages)
                if messages[0][0] == "learn":
                    for conn in conns:
                        conn.send(reply)
        finally:
            for proc in procs:
                if not done:  # the others wait for a step that will not come
                    proc.kill()
                proc.join()
            feeder.join(timeout=1)

    def _merge(self, results: list[dict[str, Any]]) -> None:
        first = results[0]
        self.events = first["events"]
        self.invalid = first["invalid"]
        self.results = sum((r["results"] for r in results), Counter())
        self.repo = MemoryRepository()
        records: dict[str, UserRecord] = {}
        added: dict[str, int] = {}
        for r in results:
            records.update(r["records"])
            added.update(r["added"])
            self.repo.expired += r["expired"]
        self.repo.records = {uid: records[uid] for uid in sorted(records, key=added.__getitem__)}
        cpu = [r["cpu_s"] for r in results]
        self.workers_cpu_s, self.busiest_cpu_s = sum(cpu), max(cpu)
        for name, seg in self.segments.items():
            parts: list[_Segment] = [r["segments"][name] for r in results]
            seg.scores = sum(p.scores for p in parts)
            seg.alerts = sum((p.alerts for p in parts), Counter())
            seg.cancels = sum(p.cancels for p in parts)
            seg.cancels_alerted = sum(p.cancels_alerted for p in parts)
            seg.lead_days = sorted(chain.from_iterable(p.lead_days for p in parts))
            seg.alerted_users = set().union(*(p.alerted_users for p in parts))
            seg.alerted_churned = set().union(*(p.alerted_churned for p in parts))
            rows = sorted(
                chain.from_iterable(r["truth"][0].get(name, []) for r in results),
                key=itemgetter(0),
            )
            seg.row_users = [u for _, u, _, _ in rows]
            seg.row_ts.extend(t for _, _, t, _ in rows)
            seg.row_scores.extend(s for _, _, _, s in rows)
            alerts = sorted(
                chain.from_iterable(r["truth"][1].get(name, []) for r in results),
                key=itemgetter(0),
            )
            seg.risk_alerts = [(u, t) for _, u, t in alerts]

    def finish(self) -> None:
        raise NotImplementedError("PartitionedReplay.run drives the whole replay")


def _part_main(replay: PartitionedReplay, index: int, conn: Any, source: Any) -> None:
    try:

        def sync(kind: str, payload: Any) -> Any:
            conn.send((kind, payload))
            return conn.recv() if kind == "learn" else None

        part = replay._part(index, sync)
        for chunk in chunks(source):
            part.feed_chunk(chunk)
        part.finish()
        conn.send(("end", part.result()))
    except BaseException:
        with contextlib.suppress(OSError):  # the coordinator is gone
            conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()
