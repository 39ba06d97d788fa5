"""BENCHMARKS.md: the machine, versions, targets and every number of one `make bench` run."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from e2e import LATENCY_TARGET_S, E2EResults
from e2e_data import Sizes
from e2e_replay import ReplayResult
from e2e_replay import render as render_replay

from churnstream.stream.devtools.kafka_local import jar_cache_dir

REPO = Path(__file__).resolve().parents[1]
HAND_BEGIN = "<!-- hand-written: bench/run_all.py keeps this section as it is -->"
HAND_END = "<!-- end of hand-written section -->"

RATIO_TARGET = 0.8
STATE_TARGET_BYTES = 2048
REPLAY_TARGET = 50_000.0


@dataclass(frozen=True, slots=True)
class Target:
    what: str
    measured: str
    met: bool | None  # None: not measured


def machine() -> dict[str, str]:
    """nproc, CPU model, RAM, OS, load at start."""
    cpu = "unknown"
    with Path("/proc/cpuinfo").open() as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "CPUs (nproc)": str(os.cpu_count()),
        "CPU model": cpu,
        "RAM": f"{mem_kib / 2**20:.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "load average at start (1, 5, 15 min)": load,
    }


def versions() -> dict[str, str]:
    """Python, Kafka (from the local broker's jars) and the libraries on the hot path."""
    # The jars the local broker runs (kafka_local.jar_cache_dir: a cache outside the checkout).
    lib = jar_cache_dir(REPO / "deploy/kafka/pom.xml") / "target" / "lib"
    jars = sorted(lib.glob("kafka_2.13-*.jar"))
    kafka = "unknown"
    if jars:
        match = re.search(r"kafka_2\.13-([\d.]+)\.jar", jars[0].name)
        kafka = match.group(1) if match else jars[0].name
    out = {"Python": platform.python_version(), "Apache Kafka": kafka}
    for dist in ("faust-streaming", "aiokafka", "river", "orjson", "prometheus-client"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def git_revision() -> str:
    """HEAD commit and whether the work tree had changes (read-only git commands)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" with uncommitted changes" if dirty else "")


def _rate(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f} ms"


def _yes(met: bool | None) -> str:
    return {True: "**met**", False: "**not met**", None: "-"}[met]


def noop_rate(res: E2EResults) -> float | None:
    """(b): the mean of the no-op runs before and after the workers (the machine drifts)."""
    runs = [tp.per_second for tp in (res.noop, res.noop_after) if tp is not None]
    return sum(runs) / len(runs) if runs else None


def targets(res: E2EResults, replay: ReplayResult | None) -> list[Target]:
    out: list[Target] = []
    base = noop_rate(res)
    for what, tp, target in (
        ("(c) ingest + features >= 0.8 x no-op Faust agent (c/b)", res.features, True),
        ("(d) full pipeline (no target; shown against the same bar)", res.worker, False),
    ):
        if tp is not None and base:
            ratio = tp.per_second / base
            met = ratio >= RATIO_TARGET
            out.append(Target(what, f"{ratio:.2f}", met if target else None))
        else:
            out.append(Target(what, "-", None))
    p99 = _latency_p99_s(res)
    out.append(
        Target(
            f"p99 event-to-score <= {LATENCY_TARGET_S * 1000:.0f} ms at half the max rate",
            "-" if p99 is None else f"{p99 * 1000:,.0f} ms",
            None if p99 is None else p99 <= LATENCY_TARGET_S,
        )
    )
    features = _per_user(res.features_outputs)
    record = _per_user(res.worker_outputs)
    out.append(
        Target(
            "<= 2 KiB serialized feature state per user (all windows; worker (c))",
            "-" if features is None else f"{features:,.0f} B after the throughput history",
            None if features is None else features <= STATE_TARGET_BYTES,
        )
    )
    out.append(
        Target(
            "whole user record of the full pipeline (d): features + pending label snapshots "
            "+ alert memory + last score (no target)",
            "-" if record is None else f"{record:,.0f} B",
            None,
        )
    )
    out.append(
        Target(
            "replay >= 50k events/s",
            "-" if replay is None else f"{replay.per_second:,.0f}/s",
            None if replay is None else replay.per_second >= REPLAY_TARGET,
        )
    )
    return out


def _latency_p99_s(res: E2EResults) -> float | None:
    lat = res.latency
    if "records_p99_ms" in lat:
        return float(lat["records_p99_ms"]) / 1000.0
    return lat.get("histogram_p99")


def _per_user(d: dict) -> float | None:
    users = d.get("state_users") or 0
    return d["state_bytes"] / users if users else None


def render(
    res: E2EResults,
    replay: ReplayResult | None,
    sizes: Sizes,
    *,
    quick: bool,
    elapsed_s: float,
    micro: dict[str, str],
    hand_written: str,
    extra: tuple[str, ...] = (),
) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` (`.venv/bin/python bench/run_all.py"
        f"{' --quick' if quick else ''}`) on {now}, in {elapsed_s / 60:.1f} minutes, at "
        f"commit {git_revision()}. Everything below the targets comes from that one run (one "
        "broker, one machine state) except the hand-written section at the end, which the "
        "script keeps.",
        "",
    ]
    if quick:
        lines += ["**Smoke run (`--quick`): sizes are tiny, the numbers mean nothing.**", ""]
    lines += ["## Targets", "", "| target | measured | |", "|---|---|---|"]
    lines += [f"| {t.what} | {t.measured} | {_yes(t.met)} |" for t in targets(res, replay)]
    if res.errors:
        lines += ["", "**Phases that failed in this run:**", ""]
        lines += [f"- {name}: `{error}`" for name, error in res.errors.items()]
    lines += ["", "## Machine and versions", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in {**machine(), **versions()}.items()]
    lines += ["", *_commands(), "", *_throughput(res), "", *_latency(res), "", *_scale(res)]
    lines += ["", *_restart(res)]
    lines += ["", *_replay(replay, sizes), "", *_micro(micro), ""]
    # Sections of other bench modules (bench/e2e_daily.py), each rendered by its module.
    lines += [x for section in extra for x in (section.strip(), "")]
    lines += [hand_written.strip(), ""]
    return "\n".join(lines)


def _commands() -> list[str]:
    return [
        "## Commands",
        "",
        "```",
        "make bench                                  # = .venv/bin/python bench/run_all.py",
        ".venv/bin/python bench/run_all.py --quick   # smoke run, tiny sizes",
        "KAFKA_BOOTSTRAP_SERVERS=host:port make bench # an existing broker instead of a local one",
        "```",
        "",
        "What the run does (bench/e2e.py): starts a local KRaft broker "
        "(`stream.devtools.kafka_local.LocalKafka`, temp dir) unless `KAFKA_BOOTSTRAP_SERVERS` "
        "is set; creates topics with "
        "a fresh prefix per phase (4 partitions); pre-produces the simulator's history with "
        "`stream.devtools.simulator.kafka_sink.send_records` (acks=all); then, one at a time:",
        "",
        "- (a) bare: an `AIOKafkaConsumer` in its own group, `getmany` + `orjson.loads` of "
        "every value (bench/e2e_kafka.py `bare_consume`);",
        "- (b) no-op Faust: `python bench/e2e_noop_faust.py --bootstrap B --app-id ID "
        "--data-dir D --web-port P TOPICS...`, one agent `async for _ in stream: pass`, "
        "configured like churnstream's app; run before (c) and again after (d);",
        "- (c) ingest + features (issue 4's measure): `CHURNSTREAM_SCORING=false "
        "CHURNSTREAM_TOPIC_PREFIX=<run>.tput. CHURNSTREAM_APP_ID=<run>-feat "
        "CHURNSTREAM_DATA_DIR=... CHURNSTREAM_METRICS_PORT=... CHURNSTREAM_WEB_PORT=... "
        "KAFKA_BOOTSTRAP_SERVERS=B churnstream worker`: admission and validation, "
        "DLQ, re-keying, dedupe, event-time alignment, per-user state with idempotent offsets, "
        "one changelog write per changed user per batch, acks after the writes, metrics;",
        "- (d) full pipeline: the same worker with default settings (app id `<run>-tput`): "
        "(c) plus a risk score published for every valid event, pending labels, alerts, the "
        "trainer.",
        "",
        "Rates of (b), (c) and (d) come from the group's committed offsets, sampled every "
        "0.2 s: records committed between the first sample showing progress and the first "
        "showing the end offsets, over that time (start-up and group join excluded). (d) is "
        "also timed by `churnstream_records_consumed_total`.",
    ]


def _throughput(res: E2EResults) -> list[str]:
    rows = [
        ("(a) bare aiokafka + orjson", res.bare),
        ("(b) no-op Faust agent, before the workers", res.noop),
        ("(b) no-op Faust agent, after the workers", res.noop_after),
        ("(c) worker, ingest + features (`CHURNSTREAM_SCORING=false`)", res.features),
        ("(d) worker, full pipeline (default settings)", res.worker),
        ("(d) by records_consumed metric", res.worker_by_metric),
    ]
    base_a = res.bare.per_second if res.bare else None
    base_b = noop_rate(res)
    lines = [
        "## Throughput: one pre-produced history, consumed to the end",
        "",
        f"{res.events:,} records in 6 topics x 4 partitions (produced at "
        f"{_rate(res.produce.per_second if res.produce else None)}/s with acks=all). "
        f"x (b) is against the mean of both no-op runs ({_rate(base_b)}/s).",
        "",
        "| consumer | records timed | seconds | events/s | x (a) | x (b) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, tp in rows:
        if tp is None:
            continue
        ra = f"{tp.per_second / base_a:.3f}" if base_a else "-"
        rb = f"{tp.per_second / base_b:.2f}" if base_b else "-"
        lines.append(
            f"| {name} | {tp.records:,} | {tp.seconds:.2f} | {tp.per_second:,.0f} | {ra} | {rb} |"
        )
    f, o = res.features_outputs, res.worker_outputs
    if f:
        lines += [
            "",
            f"The worker in (c) kept {f['state_users']:,.0f} users in {f['state_bytes']:,.0f} "
            f"bytes of state ({_per_user(f) or 0:,.0f} B/user), dead-lettered {f['dlq']:,.0f} "
            f"records and published no scores ({f['scores']:,.0f}); RSS "
            f"{f['rss_bytes'] / 2**20:,.0f} MiB.",
        ]
    if o:
        lines += [
            "",
            f"The worker in (d) published {o['scores']:,.0f} scores (one per valid event) and "
            f"{o['alerts']:,.0f} alerts, learned {o['labels']:,.0f} labels and dead-lettered "
            f"{o['dlq']:,.0f} records; it held {o['state_users']:,.0f} users in "
            f"{o['state_bytes']:,.0f} bytes of state ({_per_user(o) or 0:,.0f} B/user after "
            f"{res.events:,} events of history, pending label snapshots included), RSS "
            f"{o['rss_bytes'] / 2**20:,.0f} MiB (peak {o['peak_rss_bytes'] / 2**20:,.0f} MiB).",
        ]
    return lines


def _latency(res: E2EResults) -> list[str]:
    lat = res.latency
    if not lat:
        return ["## Event-to-score latency", "", "Not measured."]
    share = lat.get("histogram_share_within_target")
    variants = [
        f"| records, with {name} | {_ms(v.get('records_p50_ms'))} "
        f"| {_ms(v.get('records_p90_ms'))} | {_ms(v.get('records_p99_ms'))} "
        f"| {_ms(v.get('records_max_ms'))} | {v.get('matched_scores', 0):,} |"
        for name, v in res.latency_variants.items()
    ]
    return [
        "## Event-to-score latency at half the measured maximum rate",
        "",
        f"A fresh worker, warmed up with 500 records, then {lat['records']:,} records produced "
        f"at a fixed {lat['target_rate']:,.0f}/s (achieved {lat['achieved_rate']:,.0f}/s over "
        f"{lat['seconds']:.1f} s).",
        "",
        "| source | p50 | p90 | p99 | max | n |",
        "|---|---:|---:|---:|---:|---:|",
        f"| records: `scored_at` - input record timestamp | {_ms(lat.get('records_p50_ms'))} "
        f"| {_ms(lat.get('records_p90_ms'))} | {_ms(lat.get('records_p99_ms'))} "
        f"| {_ms(lat.get('records_max_ms'))} | {lat.get('matched_scores', 0):,} |",
        f"| worker histogram `churnstream_event_to_score_latency_seconds` (interpolated) "
        f"| {_ms(_s_to_ms(lat.get('histogram_p50')))} | - "
        f"| {_ms(_s_to_ms(lat.get('histogram_p99')))} | - | {lat.get('histogram_count', 0):,.0f} |",
        *variants,
        "",
        "The first two rows run with default settings (the target is judged on them); a "
        "variant row is a second fresh worker at the same rate with the setting named.",
        "",
        "Share of scores within 250 ms by the histogram (250 ms is a bucket bound, so exact): "
        + ("-" if share is None else f"{share:.1%}")
        + ".",
    ]


def _s_to_ms(x: float | None) -> float | None:
    return None if x is None else x * 1000.0


def _scale(res: E2EResults) -> list[str]:
    s = res.scale
    if not s:
        return ["## Memory and state at scale", "", "Not measured."]
    users = s["state_users"] or 1
    grown = s["rss_bytes"] - s["idle_rss_bytes"]
    tp = s["throughput"]
    return [
        f"## Memory and state at {s['users']:,} users",
        "",
        f"A fresh worker got {s['records']:,} records: for each user a signup and one activity "
        f"of its segment (bench/e2e_data.py `many_users`), consumed at {tp.per_second:,.0f}/s.",
        "",
        "| | |",
        "|---|---:|",
        f"| users in state (`churnstream_state_users`) | {s['state_users']:,.0f} |",
        f"| state bytes (`churnstream_state_bytes`) | {s['state_bytes']:,.0f} |",
        f"| state bytes per user | {s['state_bytes'] / users:,.0f} |",
        f"| worker RSS idle, before any record | {s['idle_rss_bytes'] / 2**20:,.0f} MiB |",
        f"| worker RSS after all users | {s['rss_bytes'] / 2**20:,.0f} MiB |",
        f"| worker peak RSS | {s['peak_rss_bytes'] / 2**20:,.0f} MiB |",
        f"| RSS growth per user | {grown / users:,.0f} B |",
    ]


def _restart(res: E2EResults) -> list[str]:
    r = res.restart
    if not r:
        return ["## Restart on a RocksDB data directory", "", "Not measured."]
    return [
        "## Restart on a RocksDB data directory",
        "",
        f"A worker with `CHURNSTREAM_STORE=rocksdb://` took {r['users']:,} users "
        f"(bench/e2e_data.py `many_users`; {r['changelog_records']:,} changelog records) and "
        "was stopped; then "
        "restarted on the same data directory, timed from its start to two new records "
        "committed (start-up, recovery, group join, commit interval).",
        "",
        "| restart | seconds |",
        "|---|---:|",
        f"| store records the changelog offset it holds (current) | {r['recorded']:.1f} |",
        f"| offsets deleted first (every restart before they were recorded) | {r['deleted']:.1f} |",
    ]


def _replay(replay: ReplayResult | None, sizes: Sizes) -> list[str]:
    if replay is None:
        return ["## Replay", "", "Not measured."]
    return render_replay(replay, sizes)


def _micro(micro: dict[str, str]) -> list[str]:
    if not micro:
        return ["## Micro-benchmarks", "", "Not run (`--quick` or `--skip-micro`)."]
    lines = ["## Micro-benchmarks (same run, single process)", ""]
    for command, output in micro.items():
        lines += [f"`{command}`", "", "```", output.rstrip(), "```", ""]
    return lines
