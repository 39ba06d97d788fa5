"""Legacy v1 encoding of `UserState`: still decoded (states written before v2), no longer written.

Kept whole, encoder included, so tests can produce genuine v1 blobs.

Layout v1: `version:u8 flags:u8 payload`, payload zlib-compressed when that is shorter.
Integers are zigzag LEB128 varints, times and prices are little-endian float64 (exact round
trip), event-id hashes are u32. Day buckets store only the days still inside the ring (as ages
relative to the clock's day), column-major: a counter never used in the ring costs one mask
bit, a used one is packed at the narrowest unsigned width that holds its values (varints if
negative or wider than 64 bits).
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from typing import TYPE_CHECKING

from churnstream.features.buckets import DAY_S, N_COUNTERS, N_LAST, RING_DAYS
from churnstream.stream.contract.events import SEGMENTS

if TYPE_CHECKING:
    from churnstream.features.config import FeatureConfig
    from churnstream.features.state import UserState

VERSION = 1
_FLAG_ZLIB = 1
_MIN_ZLIB = 96  # below this zlib's header overhead never pays
_D = struct.Struct("<d")
_BIG_ENDIAN = sys.byteorder == "big"
# array typecodes by value limit; all four have fixed sizes on CPython's platforms.
_WIDTHS: tuple[tuple[str, int], ...] = (
    ("B", 1 << 8),
    ("H", 1 << 16),
    ("I", 1 << 32),
    ("Q", 1 << 64),
)
_TYPECODES = frozenset(c for c, _ in _WIDTHS)
_INF = float("inf")
_NEG_INF = float("-inf")


def _put(buf: bytearray, n: int) -> None:
    n = n << 1 if n >= 0 else ((-n) << 1) - 1
    while n > 0x7F:
        buf.append((n & 0x7F) | 0x80)
        n >>= 7
    buf.append(n)


def _put_str(buf: bytearray, s: str) -> None:
    raw = s.encode()
    _put(buf, len(raw))
    buf += raw


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def int(self) -> int:
        data = self.data
        shift = 0
        n = 0
        while True:
            byte = data[self.pos]
            self.pos += 1
            n |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        return n >> 1 if not n & 1 else -((n + 1) >> 1)

    def byte(self) -> int:
        v = self.data[self.pos]
        self.pos += 1
        return v

    def double(self) -> float:
        (v,) = _D.unpack_from(self.data, self.pos)
        self.pos += 8
        return float(v)

    def str(self) -> str:
        n = self.int()
        raw = self.data[self.pos : self.pos + n]
        if len(raw) != n:
            raise ValueError("truncated string")
        self.pos += n
        return raw.decode()

    def u32s(self, k: int) -> list[int]:
        vals = list(struct.unpack_from(f"<{k}I", self.data, self.pos))
        self.pos += 4 * k
        return vals


def _put_columns(buf: bytearray, cols: list[tuple[int, ...]]) -> None:
    # Column-major: a counter the user never uses costs one bit of the mask, and each used
    # column takes the narrowest unsigned width (one C call), else varints.
    used = [k for k, col in enumerate(cols) if any(col)]
    mask = 0
    for k in used:
        mask |= 1 << k
    _put(buf, mask)
    for k in used:
        col = cols[k]
        lo, hi = min(col), max(col)
        code = next((c for c, limit in _WIDTHS if lo >= 0 and hi < limit), None)
        if code is None:
            buf.append(0)
            for v in col:
                _put(buf, v)
            continue
        arr = array(code, col)
        if _BIG_ENDIAN:
            arr.byteswap()
        buf.append(ord(code))
        buf += arr.tobytes()


def _get_columns(r: _Reader, n: int) -> list[tuple[int, ...] | list[int]]:
    mask = r.int()
    zero = (0,) * n
    cols: list[tuple[int, ...] | list[int]] = []
    for k in range(N_COUNTERS):
        if not mask & (1 << k):
            cols.append(zero)
            continue
        code = r.byte()
        if code and chr(code) not in _TYPECODES:
            raise ValueError(f"unknown column code {code}")
        if code == 0:
            cols.append([r.int() for _ in range(n)])
            continue
        arr = array(chr(code))
        end = r.pos + arr.itemsize * n
        if end > len(r.data):
            raise ValueError("truncated column")
        arr.frombytes(r.data[r.pos : end])
        if _BIG_ENDIAN:
            arr.byteswap()
        r.pos = end
        cols.append(arr.tolist())
    if mask >> N_COUNTERS:
        raise ValueError("unknown counter in column mask")
    return cols


def encode(st: UserState) -> bytes:
    """Serialize a state; see the module docstring for the layout."""
    buf = bytearray()
    _put_str(buf, st.user_id)
    seg = st.segment
    if seg is None:
        buf.append(0)
    elif seg in SEGMENTS:
        buf.append(SEGMENTS.index(seg) + 1)
    else:
        buf.append(255)
        _put_str(buf, seg)

    clock = st._clock
    opt = (
        st.signup_ts,
        st.cancel_ts,
        st.plan_price,
        st.sub_start_ts,
        st.prev_sub[0] if st.prev_sub else None,
        st.prev_sub[1] if st.prev_sub else None,
        st.lifecycle_ts if st.lifecycle_ts != _NEG_INF else None,
        clock if clock != _NEG_INF else None,
        st.first_ts if st.first_ts != _INF else None,
    )
    mask = 1 if st.churned else 0
    for i, v in enumerate(opt):
        if v is not None:
            mask |= 2 << i
    _put(buf, mask)
    for v in opt:
        if v is not None:
            buf += _D.pack(v)

    lmask = 0
    for i, v in enumerate(st.last):
        if v != _NEG_INF:
            lmask |= 1 << i
    buf.append(lmask)
    for v in st.last:
        if v != _NEG_INF:
            buf += _D.pack(v)

    # Event-id ring, oldest first, so eviction order survives the round trip.
    n = len(st.ids)
    ring = [st.ids[(st._id_pos + i) % n] for i in range(n)]
    ring = [h for h in ring if h >= 0]
    _put(buf, len(ring))
    buf += struct.pack(f"<{len(ring)}I", *ring)

    _put(buf, len(st.offsets))
    for (source, partition), offset in st.offsets.items():
        _put_str(buf, source)
        _put(buf, partition)
        _put(buf, offset)

    live: list[tuple[int, list[int]]] = []
    if clock != _NEG_INF:
        clock_day = int(clock // DAY_S)
        for day, row in zip(st.days, st.rows, strict=True):
            if row is not None and 0 <= clock_day - day < RING_DAYS:
                live.append((clock_day - day, row))
    live.sort()
    _put(buf, len(live))
    if live:
        buf += bytes(age for age, _ in live)
        _put_columns(buf, list(zip(*(row for _, row in live), strict=True)))

    payload = bytes(buf)
    flags = 0
    if len(payload) >= _MIN_ZLIB:
        packed = zlib.compress(payload, 6)
        if len(packed) < len(payload):
            payload = packed
            flags |= _FLAG_ZLIB
    return bytes((VERSION, flags)) + payload


def decode(data: bytes, cls: type[UserState], config: FeatureConfig) -> UserState:
    """Inverse of `encode`; raises ValueError on an unknown version or corrupt input."""
    if len(data) < 2:
        raise ValueError("state too short")
    if data[0] != VERSION:
        raise ValueError(f"unknown state version {data[0]}")
    payload = data[2:]
    if data[1] & _FLAG_ZLIB:
        try:
            payload = zlib.decompress(payload)
        except zlib.error as exc:
            raise ValueError(f"corrupt state: {exc}") from exc
    try:
        return _decode_payload(_Reader(payload), cls, config)
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"corrupt state: {exc}") from exc


def _decode_payload(r: _Reader, cls: type[UserState], config: FeatureConfig) -> UserState:
    st = cls(r.str(), config)
    code = r.byte()
    if code == 255:
        st.segment = r.str()
    elif code:
        st.segment = SEGMENTS[code - 1]

    mask = r.int()
    st.churned = bool(mask & 1)
    opt = [r.double() if mask & (2 << i) else None for i in range(9)]
    st.signup_ts, st.cancel_ts, st.plan_price, st.sub_start_ts = opt[0:4]
    if opt[4] is not None and opt[5] is not None:
        st.prev_sub = (opt[4], opt[5])
    if opt[6] is not None:
        st.lifecycle_ts = opt[6]
    if opt[7] is not None:
        st._clock = opt[7]
    if opt[8] is not None:
        st.first_ts = opt[8]

    lmask = r.byte()
    st.last = [r.double() if lmask & (1 << i) else _NEG_INF for i in range(N_LAST)]

    k = r.int()
    ring = r.u32s(k)[-len(st.ids) :]
    st.ids[: len(ring)] = ring
    st._id_pos = len(ring) % len(st.ids)

    for _ in range(r.int()):
        source = r.str()
        partition = r.int()
        st.offsets[(source, partition)] = r.int()

    n_days = r.int()
    if n_days:
        if st._clock == _NEG_INF:
            raise ValueError("corrupt state: day buckets without a clock")
        clock_day = int(st._clock // DAY_S)
        ages = r.data[r.pos : r.pos + n_days]
        r.pos += n_days
        rows = list(map(list, zip(*_get_columns(r, n_days), strict=True)))
        for age, row in zip(ages, rows, strict=True):
            day = clock_day - age
            st.days[day % RING_DAYS] = day
            st.rows[day % RING_DAYS] = row
    if r.pos != len(r.data):
        raise ValueError("corrupt state: trailing bytes")
    return st
