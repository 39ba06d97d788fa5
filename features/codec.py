"""Versioned binary encoding of `UserState` (once per user per flush, so it caps throughput).

Layout v6: `version:u8 flags:u8 payload`; the payload is zlib-compressed only when it is
longer than `_ZLIB_ABOVE` (rare: compression costs more CPU than the rest of the codec and
saves ~20 % on a typical state). Fixed-width little-endian fields packed with one `struct`
call per group, no per-field varints:

    head      u16 len(user_id), u8 segment code, u16 opt mask (bit 0 churned, bit i+1:
              optional value i present), u8 mask of `last` times present
    user_id   UTF-8; then, if segment code is 255, u16 length + UTF-8 segment
    doubles   the present optional values, then the present `last` times (float64)
    ids       u16 count + u32 event-id hashes, oldest first (eviction order survives)
    offsets   u16 count + per entry: u16 length, UTF-8 source, i64 partition, i64 offset
    days      u8 count + one age byte per live day (clock day - day), then, if any,
              25 column codes and the columns: code 0 = all zero (nothing stored),
              1..4 = u8/u16/u32/u64 array, 5 = zigzag varints (negative or > 64 bits)

v6 stores `day_before_ring` where v5 stored `last_day_before` (the day of a slot's event
before its newest one's day): a v5 day older than the clock's ring is kept as the newest day
out of it, a v5 day inside the ring is dropped (the ring's rows hold it; a still older day out of
the ring is unknown, read as never seen).
v5 added two optional values (the signup and the billing anchor before the newest ones, read
by a row as of an earlier boundary) and, after the days, `u8` mask + one `i32` per slot of
`last_day_before` kept. v4 added two optional values (the price before the newest
price change and when that change took effect) and keeps `features.buckets.RING_DAYS` days
(ages up to 31, was 27: a v3 reader would fold them onto the wrong slots). v3 added the tenth
optional time (the billing anchor, `renewal_ts`). v2 to v4 are the same layout without those
values, so their states decode unchanged (their masks never have those bits): states written
before an upgrade stay readable, and an older reader rejects a newer state by its version.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING

from churnstream.features import buckets as b
from churnstream.features.buckets import N_COUNTERS, N_LAST, RING_DAYS
from churnstream.stream.contract.events import DAY_S, SEGMENTS

if TYPE_CHECKING:
    from churnstream.features.config import FeatureConfig
    from churnstream.features.state import UserState

VERSION = 6
_READABLE = (2, 3, 4, 5, 6)
_FLAG_ZLIB = 1
_ZLIB_ABOVE = 1800  # keeps the worst case near the 2 KiB budget without taxing the usual one
_HEAD = struct.Struct("<HBHB")
_U16 = struct.Struct("<H")
_OFFSET = struct.Struct("<qq")
_BIG_ENDIAN = sys.byteorder == "big"
# Column code -> array typecode; all four have fixed sizes on CPython's platforms.
_TYPECODE = {1: "B", 2: "H", 3: "I", 4: "Q"}
_ITEMSIZE = {code: array(tc).itemsize for code, tc in _TYPECODE.items()}
_VARINT = 5
# Width tried first per counter: 64 bits for the hashed-id bitmaps (a high bit is as likely as
# any other), else the narrowest.
_HINT = [1] * N_COUNTERS
_HINT[b.VIDEO_BITS] = _HINT[b.INTEGRATION_BITS] = 4
_N_OPT = 14
_INF = float("inf")
_NEG_INF = float("-inf")


def _encode_columns(rows: list[list[int]]) -> bytes:
    # One array per column at the narrowest width that holds it. Instead of max() per column
    # (as costly as the array itself), try widths upwards from a per-counter hint: array()
    # raises OverflowError at the first value that does not fit, which is cheap. Written
    # grouped by width, so the decoder reads each width's columns with one array.
    cols = list(zip(*rows, strict=True))
    codes = bytearray(N_COUNTERS)
    groups: list[list[bytes]] = [[] for _ in range(_VARINT + 1)]
    for k, col in enumerate(cols):
        if not any(col):
            continue  # never used in the ring: costs its code byte only
        code = _HINT[k]
        while code < _VARINT:
            try:
                arr = array(_TYPECODE[code], col)
                break
            except OverflowError:
                code += 1
        if code == _VARINT:  # negative or wider than 64 bits
            groups[code].append(_varints(col))
        else:
            if _BIG_ENDIAN:
                arr.byteswap()
            groups[code].append(arr.tobytes())
        codes[k] = code
    return bytes(codes) + b"".join(b"".join(group) for group in groups)


def _varints(col: Sequence[int]) -> bytes:
    # Zigzag LEB128: small magnitudes of either sign take one byte.
    buf = bytearray()
    for v in col:
        n = v << 1 if v >= 0 else ((-v) << 1) - 1
        while n > 0x7F:
            buf.append((n & 0x7F) | 0x80)
            n >>= 7
        buf.append(n)
    return bytes(buf)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Inverse of one `_varints` value: (value, position after it)."""
    shift = 0
    n = 0
    while True:
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
    return (n >> 1 if not n & 1 else -((n + 1) >> 1)), pos


def encode(st: UserState) -> bytes:
    """Serialize a state; see the module docstring for the layout."""
    uid = st.user_id.encode()
    seg = st.segment
    seg_raw = b""
    if seg is None:
        seg_code = 0
    elif seg in SEGMENTS:
        seg_code = SEGMENTS.index(seg) + 1
    else:
        seg_code = 255
        raw = seg.encode()
        seg_raw = _U16.pack(len(raw)) + raw

    clock = st._clock
    prev = st.prev_sub
    opt = (
        st.signup_ts,
        st.cancel_ts,
        st.plan_price,
        st.sub_start_ts,
        prev[0] if prev else None,
        prev[1] if prev else None,
        st.lifecycle_ts if st.lifecycle_ts != _NEG_INF else None,
        clock if clock != _NEG_INF else None,
        st.first_ts if st.first_ts != _INF else None,
        st.renewal_ts,
        st.price_before,
        st.price_from,
        st.signup_before,
        st.renewal_before,
    )
    mask = 1 if st.churned else 0
    doubles = []
    for i, v in enumerate(opt):
        if v is not None:
            mask |= 2 << i
            doubles.append(v)
    lmask = 0
    for i, v in enumerate(st.last):
        if v != _NEG_INF:
            lmask |= 1 << i
            doubles.append(v)

    # Event-id ring, oldest first. Slots fill from 0, so an unfilled ring ends in empty slots.
    ids = st.ids
    pos = st._id_pos
    ring = ids[:pos] if max(ids[pos:]) < 0 else ids[pos:] + ids[:pos]
    if ring and min(ring) < 0:  # not that fill pattern (hand-built state): drop empty slots
        ring = [h for h in ring if h >= 0]

    parts = [
        _HEAD.pack(len(uid), seg_code, mask, lmask),
        uid,
        seg_raw,
        struct.pack(f"<{len(doubles)}d", *doubles),
        _U16.pack(len(ring)),
        struct.pack(f"<{len(ring)}I", *ring),
        _U16.pack(len(st.offsets)),
    ]
    for (source, partition), offset in st.offsets.items():
        raw = source.encode()
        parts += (_U16.pack(len(raw)), raw, _OFFSET.pack(partition, offset))

    # Days still inside the clock's ring, youngest first (ages are relative to the clock).
    ages = bytearray()
    live: list[list[int]] = []
    if clock != _NEG_INF:
        clock_day = int(clock // DAY_S)
        days, rows = st.days, st.rows
        for age in range(RING_DAYS):
            idx = (clock_day - age) % RING_DAYS
            row = rows[idx]
            if row is not None and days[idx] == clock_day - age:
                ages.append(age)
                live.append(row)
    parts.append(bytes((len(live),)))
    if live:
        parts.append(bytes(ages))
        parts.append(_encode_columns(live))
    kept = [(i, d) for i, d in enumerate(st.day_before_ring) if d >= 0]
    parts.append(bytes((sum(1 << i for i, _ in kept),)))
    parts.append(struct.pack(f"<{len(kept)}i", *(d for _, d in kept)))

    payload = b"".join(parts)
    if len(payload) > _ZLIB_ABOVE:
        packed = zlib.compress(payload, 6)
        if len(packed) < len(payload):
            return bytes((VERSION, _FLAG_ZLIB)) + packed
    return bytes((VERSION, 0)) + payload


def decode(data: bytes, cls: type[UserState], config: FeatureConfig) -> UserState:
    """Inverse of `encode`; raises ValueError on an unknown version or corrupt input."""
    if len(data) < 2:
        raise ValueError("state too short")
    if data[0] not in _READABLE:
        raise ValueError(f"unknown state version {data[0]}")
    payload = data[2:]
    if data[1] & _FLAG_ZLIB:
        try:
            payload = zlib.decompress(payload)
        except zlib.error as exc:
            raise ValueError(f"corrupt state: {exc}") from exc
    try:
        return _decode_payload(payload, cls, config, data[0])
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"corrupt state: {exc}") from exc


def _take(data: bytes, pos: int, n: int) -> bytes:
    raw = data[pos : pos + n]
    if len(raw) != n:
        raise ValueError("corrupt state: truncated")
    return raw


def _decode_payload(
    data: bytes, cls: type[UserState], config: FeatureConfig, version: int
) -> UserState:
    n_uid, seg_code, mask, lmask = _HEAD.unpack_from(data, 0)
    pos = _HEAD.size
    st = cls(_take(data, pos, n_uid).decode(), config)
    pos += n_uid
    if seg_code == 255:
        (n,) = _U16.unpack_from(data, pos)
        st.segment = _take(data, pos + 2, n).decode()
        pos += 2 + n
    elif seg_code:
        st.segment = SEGMENTS[seg_code - 1]
    if mask >> (_N_OPT + 1) or lmask >> N_LAST:
        raise ValueError("corrupt state: unknown field in mask")

    n_doubles = (mask >> 1).bit_count() + lmask.bit_count()
    doubles = struct.unpack_from(f"<{n_doubles}d", data, pos)
    pos += 8 * n_doubles
    it = iter(doubles)
    st.churned = bool(mask & 1)
    opt = [next(it) if mask & (2 << i) else None for i in range(_N_OPT)]
    st.signup_ts, st.cancel_ts, st.plan_price, st.sub_start_ts = opt[0:4]
    if opt[4] is not None and opt[5] is not None:
        st.prev_sub = (opt[4], opt[5])
    if opt[6] is not None:
        st.lifecycle_ts = opt[6]
    if opt[7] is not None:
        st._clock = opt[7]
    if opt[8] is not None:
        st.first_ts = opt[8]
    st.renewal_ts = opt[9]
    st.price_before, st.price_from = opt[10:12]
    st.signup_before, st.renewal_before = opt[12:14]
    st.last = [next(it) if lmask & (1 << i) else _NEG_INF for i in range(N_LAST)]

    (k,) = _U16.unpack_from(data, pos)
    ring = list(struct.unpack_from(f"<{k}I", data, pos + 2))[-len(st.ids) :]
    pos += 2 + 4 * k
    st.ids[: len(ring)] = ring
    st._id_set = set(ring)  # what `UserState.apply` looks a hash up in
    st._id_pos = len(ring) % len(st.ids)

    (n_offsets,) = _U16.unpack_from(data, pos)
    pos += 2
    offsets = st.offsets
    for _ in range(n_offsets):
        (n,) = _U16.unpack_from(data, pos)
        source = _take(data, pos + 2, n).decode()
        partition, offset = _OFFSET.unpack_from(data, pos + 2 + n)
        offsets[(source, partition)] = offset
        pos += 2 + n + _OFFSET.size

    n_days = data[pos]
    pos += 1
    if n_days:
        if st._clock == _NEG_INF:
            raise ValueError("corrupt state: day buckets without a clock")
        ages = _take(data, pos, n_days)
        pos += n_days
        cols, pos = _decode_columns(data, pos, n_days)
        clock_day = int(st._clock // DAY_S)
        days, rows = st.days, st.rows
        for age, row in zip(ages, map(list, zip(*cols, strict=True)), strict=True):
            day = clock_day - age
            days[day % RING_DAYS] = day
            rows[day % RING_DAYS] = row
    if version >= 5:
        bmask = data[pos]
        if bmask >> N_LAST:
            raise ValueError("corrupt state: unknown field in mask")
        kept = iter(struct.unpack_from(f"<{bmask.bit_count()}i", data, pos + 1))
        days = [next(kept) if bmask & (1 << i) else -1 for i in range(N_LAST)]
        if version == 5:  # the day before the newest's: kept only if out of the ring
            ring_lo = int(st._clock // DAY_S) - (RING_DAYS - 1)
            days = [d if d < ring_lo else -1 for d in days]
        st.day_before_ring = days
        pos += 1 + 4 * bmask.bit_count()
    if pos != len(data):
        raise ValueError("corrupt state: trailing bytes")
    return st


def _decode_columns(data: bytes, pos: int, n: int) -> tuple[list[Sequence[int]], int]:
    codes = _take(data, pos, N_COUNTERS)
    pos += N_COUNTERS
    groups: dict[int, list[int]] = {}
    for k, code in enumerate(codes):
        if code:
            groups.setdefault(code, []).append(k)
    cols: list[Sequence[int]] = [(0,) * n] * N_COUNTERS
    for code in sorted(groups):  # the encoder writes widths in code order, varints last
        ks = groups[code]
        if code == _VARINT:
            for k in ks:
                col = []
                for _ in range(n):
                    v, pos = _read_varint(data, pos)
                    col.append(v)
                cols[k] = col
            continue
        typecode = _TYPECODE.get(code)
        if typecode is None:
            raise ValueError(f"corrupt state: unknown column code {code}")
        arr = array(typecode)
        end = pos + _ITEMSIZE[code] * n * len(ks)
        arr.frombytes(_take(data, pos, end - pos))
        if _BIG_ENDIAN:
            arr.byteswap()
        pos = end
        flat = arr.tolist()
        for i, k in enumerate(ks):
            cols[k] = flat[i * n : (i + 1) * n]
    return cols, pos
