"""Layout of one day bucket: a flat list of integer counters, grouped for sparse storage.

Every counter is an int so sums are exact and independent of arrival order (float sums are
not associative). Units are chosen so rounding happens once per event, never per window.
"""

from __future__ import annotations

import zlib
from functools import reduce
from operator import add, or_
from typing import Final

# The longest feature window, in days.
WINDOW_DAYS: Final = 28
# Days the ring keeps beyond the window: a daily row as of boundary B reads the complete days
# before B (`UserState.vector_at`), and the state may run this far past B before the row is
# made (live rows are made later than `replay`'s when a source or the model is waited for)
# without losing the oldest day of the row's window. Days older than the window no longer
# take events (too late) and count in no window of the state's own clock.
AHEAD_DAYS: Final = 4
RING_DAYS: Final = WINDOW_DAYS + AHEAD_DAYS

ACTIVE: Final = 0  # 1 if the day has any behaviour event
LOGINS: Final = 1  # successful logins
FAILED_LOGINS: Final = 2
VIDEOS: Final = 3  # video views (a view is a start)
VIDEOS_DONE: Final = 4
WATCH_DS: Final = 5  # watched time, deciseconds
WATCH_FRAC_BP: Final = 6  # sum of min(watched/duration, 1) in basis points (1e-4)
ABANDONED: Final = 7  # views not completed and stopped before 25 %
SEEKS: Final = 8
REWINDS: Final = 9
PAUSES: Final = 10
VIDEO_BITS: Final = 11  # 64-bit bitmap of hashed video ids (OR, not sum)
SYNCS: Final = 12
SYNC_ERRORS: Final = 13
LATENCY_MS: Final = 14  # sum of latency_ms over syncs that carry it
LATENCY_N: Final = 15
INTEGRATION_BITS: Final = 16  # 64-bit bitmap of hashed integration names (OR)
VALUE_CENTS: Final = 17  # value in 1/100 currency units
VALUE_EVENTS: Final = 18
JOBS: Final = 19
JOBS_FAILED: Final = 20
DOCUMENTS: Final = 21
PROC_MS: Final = 22  # sum of processing_ms over jobs that carry it
PROC_N: Final = 23
PROC_MS_MAX: Final = 24  # max (not sum)
N_COUNTERS: Final = 25

# Indices into UserState.last: latest event time per kind (-inf = never seen).
LAST_EVENT: Final = 0  # any behaviour or value event
LAST_LOGIN: Final = 1  # successful login
LAST_VIDEO: Final = 2
LAST_SYNC: Final = 3
LAST_OK_SYNC: Final = 4
LAST_JOB: Final = 5
LAST_VALUE: Final = 6  # value event with value > 0
N_LAST: Final = 7

BITMAP_COUNTERS: Final = (VIDEO_BITS, INTEGRATION_BITS)
MAX_COUNTERS: Final = (PROC_MS_MAX,)


def id_bit(text: str) -> int:
    """One of 64 bits for an id, from a stable hash (Python's hash() is salted per process)."""
    return 1 << (zlib.crc32(text.encode()) & 63)


def aggregate(rows: list[list[int]]) -> list[int]:
    """Window totals of day rows: sums, except OR for bitmaps and max for maxima."""
    if not rows:
        return [0] * N_COUNTERS
    if len(rows) == 1:
        return list(rows[0])
    cols = list(zip(*rows, strict=True))
    out = list(map(sum, cols))  # no comprehension frame: a daily row makes three of these
    for k in BITMAP_COUNTERS:
        out[k] = reduce(or_, cols[k])  # an OR of 2+ rows, without a Python loop
    for k in MAX_COUNTERS:
        out[k] = max(cols[k])
    return out


def nested(
    inner: list[list[int]], middle: list[list[int]], outer: list[list[int]]
) -> tuple[list[int], list[int], list[int]]:
    """(aggregate(inner), aggregate(inner + middle), aggregate(inner + middle + outer)) for
    nested windows (3 in 7 in 28 days): each row is summed once instead of up to three times.
    The counters are integers (sums, OR, max), so the grouping does not change a total."""
    w_in = aggregate(inner)
    w_mid = _extend(w_in, bool(inner), middle)
    return w_in, w_mid, _extend(w_mid, bool(inner or middle), outer)


def _extend(total: list[int], had_rows: bool, rows: list[list[int]]) -> list[int]:
    """`aggregate(earlier + rows)` given `total = aggregate(earlier)`; a new list."""
    if not rows:
        return list(total)
    if not had_rows:
        return aggregate(rows)
    return combine(total, aggregate(rows))


def combine(total: list[int], row: list[int]) -> list[int]:
    """`aggregate([*rows, row])` given `total = aggregate(rows)`: a new list, inputs untouched."""
    out = list(map(add, total, row))
    out[VIDEO_BITS] = total[VIDEO_BITS] | row[VIDEO_BITS]
    out[INTEGRATION_BITS] = total[INTEGRATION_BITS] | row[INTEGRATION_BITS]
    out[PROC_MS_MAX] = max(total[PROC_MS_MAX], row[PROC_MS_MAX])
    return out
