"""Micro-benchmark of the model side: µs per predict / learn / explain, snapshot sizes.

Run: .venv/bin/python bench/bench_model.py [--n 5000]
Single-threaded, deterministic inputs; numbers are per call on this machine.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from churnstream.model.config import ModelConfig
from churnstream.model.labels import PendingLabels
from churnstream.model.learner import SegmentModel
from churnstream.model.quality import SegmentQuality
from churnstream.stream.contract.events import DAY_S

try:
    from churnstream.features.names import FEATURE_NAMES
except ImportError:  # features package not available: same size, synthetic names
    FEATURE_NAMES = tuple(f"f{i}" for i in range(72))


def per_call_us(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000, help="calls per measurement")
    args = parser.parse_args()
    n = args.n
    rng = random.Random(0)
    names = list(FEATURE_NAMES)
    xs = [{k: rng.uniform(0, 10) for k in names} for _ in range(n)]
    ys = [x[names[2]] > 7 for x in xs]
    cfg = ModelConfig()
    print(f"features: {len(names)}, calls per measurement: {n}")

    for est in ("logistic", "hoeffding", "arf"):
        m = SegmentModel("course", estimator=est, base_rate=0.08, feature_names=names)
        start = time.perf_counter()
        for x, y in zip(xs, ys, strict=True):
            m.learn(x, y)
        learn = (time.perf_counter() - start) / n * 1e6
        pred = per_call_us(lambda m=m: m.predict(xs[0]), n)
        expl = per_call_us(lambda m=m: m.explain(xs[0]), n)
        size = len(m.snapshot())
        print(
            f"{est:9s} learn {learn:8.1f} µs  predict {pred:8.1f} µs  explain {expl:8.1f} µs"
            f"  snapshot {size / 1024:8.1f} KiB"
        )

    rules = cfg.rules_for("course")
    print(
        f"rules     predict {per_call_us(lambda: rules.predict(xs[0]), n):.1f} µs"
        f"  explain {per_call_us(lambda: rules.explain(xs[0]), n):.1f} µs"
    )

    p = PendingLabels("user-0000001", "saas")
    for d in range(14):
        p.add(1.767e9 + d * DAY_S, [xs[d][k] for k in names], 0.1, d, 14 * DAY_S)
    print(f"pending labels, 14 snapshots x {len(names)} features: {len(p.to_bytes())} B/user")

    q = SegmentQuality()
    for _ in range(20_000):
        q.update(rng.random(), rng.random() < 0.1)
    t0 = time.perf_counter()
    q.report()
    upd = per_call_us(lambda: q.update(0.3, False), n)
    print(
        f"quality   update {upd:.1f} µs  report (20k window) "
        f"{(time.perf_counter() - t0) * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
