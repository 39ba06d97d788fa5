"""`python -m churnstream.stream.devtools.simulator --users 2000 --days 90 --out sim.jsonl`
writes JSONL + truth."""

from __future__ import annotations

import argparse
import time

from churnstream.stream.devtools.simulator.config import SimConfig
from churnstream.stream.devtools.simulator.generator import generate, ground_truth
from churnstream.stream.devtools.simulator.jsonl import write_jsonl
from churnstream.stream.devtools.simulator.truth import truth_path


def main(argv: list[str] | None = None) -> int:
    """Generate a history to a JSONL file and its ground truth next to it."""
    p = argparse.ArgumentParser(
        prog="python -m churnstream.stream.devtools.simulator", description=__doc__
    )
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--churn-rate", type=float, default=0.25)
    p.add_argument("--course-silent-share", type=float, default=0.7)
    p.add_argument("--silent-share", type=float, default=0.1, help="SaaS and docs")
    p.add_argument("--bad-fraction", type=float, default=0.0)
    p.add_argument("--roi-drop-fraction", type=float, default=0.1)
    p.add_argument("--segments", default="course,saas,docs", help="comma-separated")
    p.add_argument("--out", required=True, help="JSONL path; truth goes to *.truth.json")
    args = p.parse_args(argv)
    config = SimConfig(
        users=args.users,
        days=args.days,
        seed=args.seed,
        churn_rate=args.churn_rate,
        course_silent_share=args.course_silent_share,
        silent_share=args.silent_share,
        bad_fraction=args.bad_fraction,
        roi_drop_fraction=args.roi_drop_fraction,
        segments=tuple(s.strip() for s in args.segments.split(",") if s.strip()),
    )
    began = time.perf_counter()  # for the throughput report only
    n = write_jsonl(generate(config), args.out)
    elapsed = time.perf_counter() - began
    truth = ground_truth(config)
    truth.write(truth_path(args.out))
    print(
        f"{n} records in {elapsed:.1f} s ({n / max(elapsed, 1e-9):,.0f}/s); "
        f"churn rate {truth.churn_rate():.3f}; truth: {truth_path(args.out)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
