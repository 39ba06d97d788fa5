"""Event score records worked out in other processes (`replay --jobs N`, `backfill --jobs N`).

What a replay does in event-time order (features, daily rows, labels, learning, alerts) stays
in one process: the models learn from every user of a segment in that order, and a boundary's
alerts compare its users. An event score is read by no decision, and its record (model score,
explanation, JSON) costs more than the rest of the event: the detector hands it out as an
`EventScore` holding the model it picked, and this pool scores it with a copy of that model
(decoded from the very snapshot the replay installed), writing the records in their order.
The same records as one process, bit for bit; `scored_at` is the replay's, taken at the event.
"""

from __future__ import annotations

import multiprocessing
import struct
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from typing import IO, Any

import orjson

from churnstream.features import FEATURE_NAMES
from churnstream.model.config import ModelConfig
from churnstream.model.engine import EventScore, score_record
from churnstream.model.learner import SegmentModel
from churnstream.model.scoring import Scorer

CHUNK = 2000  # event scores per task: large enough that the hand-over is small beside them
MODELS_KEPT = 64  # decoded snapshots a worker keeps (every task brings those it uses)

# A row as sent: user_id, segment, ts, model key (None: the rules), features, scored_at.
_Row = tuple[str, str, float, int | None, bytes, str]
_VECTOR = struct.Struct(f"<{len(FEATURE_NAMES)}d")  # exact for every float, the fastest here


class ScorePool:
    """Writes score records to `out` in the order given: daily records as they are, event
    scores once a worker made them. `installed` must see every snapshot the scorer installs."""

    def __init__(self, workers: int, config: ModelConfig, out: IO[bytes]) -> None:
        methods = multiprocessing.get_all_start_methods()
        # fork: a worker starts at once, and needs no import-safe `__main__` (forkserver and
        # spawn run the caller's script again in each worker, without its `__name__` guard a
        # pool that never starts). The replay copies each page it had at the fork on its first
        # write after it: the pool starts with the replay, before any user state.
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        # An executor, not multiprocessing.Pool: a worker that dies (killed, out of memory)
        # fails the replay (BrokenProcessPool) instead of leaving it waiting forever.
        self._pool = ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init, initargs=(config,)
        )
        self._config = config
        self._out = out
        self._keys: dict[SegmentModel, tuple[int, bytes]] = {}  # by identity
        self._items: list[bytes | _Row] = []
        self._models: dict[int, bytes] = {}  # snapshots the current chunk uses
        self._events = 0
        self._pending: deque[Future[tuple[bytes, float]]] = deque()
        self.cpu_s = 0.0  # CPU seconds the workers spent on the records written so far
        self._ahead = 4 * workers  # chunks in flight before the replay waits for the oldest

    def installed(self, model: SegmentModel, snapshot: bytes) -> None:
        self._keys[model] = (len(self._keys), snapshot)

    def line(self, data: bytes) -> None:
        """A record already serialised (a daily score)."""
        self._items.append(data)

    def event(self, row: EventScore) -> None:
        model, key = row.model, None
        if model is not None and self._config.ready(model):
            known = self._keys.get(model)
            if known is None:  # not installed through this replay: score it here
                self.line(event_score_line(Scorer(self._config, FEATURE_NAMES), row.model, row))
                return
            key, self._models[key] = known
        x = _VECTOR.pack(*row.vector)
        self._items.append((row.user_id, row.segment, row.ts, key, x, row.scored_at))
        self._events += 1
        if self._events >= CHUNK:
            self._submit()

    def close(self) -> None:
        """Write every record given, then stop the workers."""
        try:
            self._submit()
            while self._pending:
                self._write()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self) -> None:
        if not self._items:
            return
        task = (self._models, self._items)
        self._models, self._items, self._events = {}, [], 0
        self._pending.append(self._pool.submit(_work, task))
        while self._pending and (len(self._pending) > self._ahead or self._pending[0].done()):
            self._write()

    def _write(self) -> None:
        data, cpu_s = self._pending.popleft().result()
        self._out.write(data)
        self.cpu_s += cpu_s


def event_score_line(scorer: Scorer, model: SegmentModel | None, row: EventScore) -> bytes:
    """An event score's record (JSON line) with `model` (None: the rules)."""
    s = scorer.score_with(model, row.segment, row.x)
    horizon_s = scorer.config.horizon_s(row.segment)
    rec = score_record(row.user_id, row.segment, row.ts, s, horizon_s, "event", row.scored_at)
    return orjson.dumps(rec) + b"\n"


# -- in the worker processes -------------------------------------------------------------------

_scorer: Scorer | None = None
_decoded: dict[int, SegmentModel] = {}


def _init(config: ModelConfig) -> None:
    global _scorer
    _scorer = Scorer(config, FEATURE_NAMES)
    _decoded.clear()


def _work(task: tuple[dict[int, bytes], list[Any]]) -> tuple[bytes, float]:
    began = time.process_time()
    snapshots, items = task
    scorer = _scorer
    assert scorer is not None
    if len(_decoded) + len(snapshots) > MODELS_KEPT:
        _decoded.clear()
    trust = scorer.config.trust_pickled_snapshots
    for key, data in snapshots.items():
        if key not in _decoded:
            _decoded[key] = SegmentModel.from_snapshot(data, allow_pickle=trust)
    parts = []
    for item in items:
        if type(item) is bytes:
            parts.append(item)
            continue
        user_id, segment, ts, key, x, scored_at = item
        vector = list(_VECTOR.unpack(x))
        values = dict(zip(FEATURE_NAMES, vector, strict=True))
        row = EventScore(user_id, segment, ts, None, vector, values, scored_at)
        parts.append(event_score_line(scorer, None if key is None else _decoded[key], row))
    return b"".join(parts), time.process_time() - began
