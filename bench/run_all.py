"""`make bench`: every benchmark in one run on one broker, written to BENCHMARKS.md.

    .venv/bin/python bench/run_all.py            # full run (~25 min on 2 cores), BENCHMARKS.md
    .venv/bin/python bench/run_all.py --quick    # smoke run, tiny sizes, writes a temp file
    .venv/bin/python bench/run_all.py --skip-daily  # without issue 14's phases (e2e_daily.py)

Starts its own local broker in a temp dir (stopped at the end, and by the kernel if this
process dies) unless KAFKA_BOOTSTRAP_SERVERS is set. The hand-written "how to read these
numbers" section of the existing output file is kept as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from e2e import run_e2e
from e2e_daily import FULL_DAILY, QUICK_DAILY, DailyResults, run_daily
from e2e_daily import render as render_daily
from e2e_data import FULL, QUICK
from e2e_replay import ReplayResult, replay_throughput
from e2e_report import HAND_BEGIN, HAND_END, REPO, render

from churnstream.stream.devtools.kafka_local import LocalKafka

log = logging.getLogger("bench")

MICRO = ("bench/bench_parse.py", "bench/bench_features.py", "bench/bench_model.py")
# Written by another engineer; included when present.
OPTIONAL_MICRO = ("bench/bench_replay.py",)
MICRO_TIMEOUT_S = 180

DEFAULT_HAND_WRITTEN = f"""{HAND_BEGIN}
## How to read these numbers

(Write here; `make bench` keeps this section.)
{HAND_END}"""


@contextlib.contextmanager
def broker(workdir: Path) -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS if set, else a local broker that is always stopped."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    kafka = LocalKafka(workdir / "kafka", die_with_parent=True)
    try:
        bootstrap = kafka.start()
        log.info("local broker at %s", bootstrap)
        yield bootstrap
    finally:
        kafka.stop()


def hand_written(path: Path) -> str:
    """The kept section of the repo's BENCHMARKS.md (else of `path`), else a placeholder."""
    for candidate in (REPO / "BENCHMARKS.md", path):
        if candidate.exists():
            text = candidate.read_text(encoding="utf-8")
            start, end = text.find(HAND_BEGIN), text.find(HAND_END)
            if 0 <= start < end:
                return text[start : end + len(HAND_END)]
    return DEFAULT_HAND_WRITTEN


def run_micro() -> dict[str, str]:
    """Run the micro-benchmarks one by one; their stdout, by command."""
    out: dict[str, str] = {}
    for script in MICRO + tuple(s for s in OPTIONAL_MICRO if (REPO / s).exists()):
        command = f".venv/bin/python {script}"
        log.info("micro-benchmark: %s", command)
        try:
            done = subprocess.run(
                [sys.executable, script],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=MICRO_TIMEOUT_S,
                check=False,
            )
            text = (
                done.stdout
                if done.returncode == 0
                else (f"(exit {done.returncode})\n{done.stdout}\n{done.stderr[-2000:]}")
            )
        except subprocess.TimeoutExpired:
            text = f"(did not finish in {MICRO_TIMEOUT_S} s)"
        out[command] = text
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny sizes")
    parser.add_argument("--skip-micro", action="store_true", help="no micro-benchmarks")
    parser.add_argument(
        "--skip-daily",
        action="store_true",
        help="no daily-scoring phases (bench/e2e_daily.py: SCORE_EVENTS false/true against "
        "a no-op agent, a day boundary over 100k users)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output file (default: BENCHMARKS.md; --quick: a temp file)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, data)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    sizes = QUICK if args.quick else FULL
    out = args.out or (
        Path(tempfile.gettempdir()) / "churnstream-BENCHMARKS-quick.md"
        if args.quick
        else REPO / "BENCHMARKS.md"
    )
    keep_text = hand_written(out)
    workdir = Path(tempfile.mkdtemp(prefix="churnstream-bench-"))
    began = time.monotonic()
    ok = False
    try:
        micro = {} if args.quick or args.skip_micro else run_micro()
        log.info("replay over a simulated file")
        replay: ReplayResult | None = None
        try:
            replay = replay_throughput(sizes, workdir)
            log.info("replay: %.0f events/s", replay.per_second)
        except Exception as exc:  # others' code under change: report, run the rest
            log.exception("replay failed")
            replay_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        else:
            replay_error = None
        with broker(workdir) as bootstrap:
            budget_s = 120.0 if args.quick else 300.0
            res = asyncio.run(run_e2e(bootstrap, sizes, workdir, budget_s=budget_s))
            daily: DailyResults | None = None
            if not args.skip_daily:
                log.info("issue 14: daily scoring against event scoring, a day boundary")
                daily = asyncio.run(
                    run_daily(
                        bootstrap,
                        sizes,
                        QUICK_DAILY if args.quick else FULL_DAILY,
                        workdir / "daily",
                        budget_s=budget_s,
                    )
                )
        if replay_error:
            res.errors["replay"] = replay_error
        text = render(
            res,
            replay,
            sizes,
            quick=args.quick,
            elapsed_s=time.monotonic() - began,
            micro=micro,
            hand_written=keep_text,
            extra=() if daily is None else (render_daily(daily, quick=args.quick),),
        )
        out.write_text(text, encoding="utf-8")
        log.info("wrote %s", out)
        ok = True
    finally:
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log.info("work dir (logs) kept: %s", workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
