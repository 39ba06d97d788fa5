"""`churnstream worker` subprocesses for the soak, started the one way the dev tools start them
(`stream.devtools.processes`), with their metrics and memory read from outside.

Metrics of a process killed with SIGKILL are gone with it, so a worker keeps the counters it
scraped last before each stop (`Worker.kept`): a drill's totals add every incarnation's.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

from churnstream.stream.devtools.kafka_local import free_port
from churnstream.stream.devtools.observe import metric_sum, scrape
from churnstream.stream.devtools.processes import ManagedProcess, start_worker, worker_env

REPO = Path(__file__).resolve().parents[2]
# A dead member keeps its partitions until its session times out; 6 s is the broker's minimum.
FAST_FAILOVER = {"BROKER_SESSION_TIMEOUT": "6", "BROKER_HEARTBEAT_INTERVAL": "1"}
# Counters a drill adds up over every incarnation of its workers.
KEPT = (
    "churnstream_events_released_early_total",
    "churnstream_records_consumed_total",
    "churnstream_state_quarantined_total",
    "churnstream_rebalances_total",
    "churnstream_output_send_retries_total",
)


def rss_mib(pid: int) -> float:
    """Resident memory of `pid` in MiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Worker:
    """One worker process of a drill; restartable on the same data directory."""

    def __init__(
        self,
        name: str,
        bootstrap: str,
        prefix: str,
        app_id: str,
        data_dir: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.app_id = app_id
        self.data_dir = data_dir
        self.extra_env = {**FAST_FAILOVER, **(env or {})}
        self.metrics_port = free_port()
        self.web_port = free_port()
        self.log = data_dir / f"{name}.log"
        self.proc: ManagedProcess | None = None
        self.kept: Counter[str] = Counter()
        self.rss_first: float | None = None
        self.rss_last = 0.0

    def start(self, timeout: float = 120.0) -> Worker:
        base = {k: v for k, v in os.environ.items() if not k.startswith("CHURNSTREAM_")}
        env = worker_env(
            base,
            self.bootstrap,
            topic_prefix=self.prefix,
            app_id=self.app_id,
            data_dir=self.data_dir / "faust",
            metrics_port=self.metrics_port,
            web_port=self.web_port,
            flush_interval_s=0.5,
        )
        env.update(self.extra_env)
        self.proc = start_worker(
            env,
            self.log,
            log_level="warning",
            name=self.name,
            cwd=REPO,
            append=True,
            with_parent=True,
        )
        self.proc.wait_ready(lambda: self.scrape() is not None, timeout, "metrics endpoint")
        self.sample_rss()
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.running()

    def check_alive(self) -> bool:
        """True while running; raises with the log's last line once the process died."""
        if self.proc is not None and not self.proc.running():
            lines = [x for x in self.proc.log_tail(20).splitlines() if x.strip()]
            last = lines[-1].strip() if lines else "(empty log)"
            raise RuntimeError(f"{self.name} exited ({self.proc.popen.returncode}): {last}")
        return True

    def sample_rss(self) -> float:
        if self.proc is not None and self.proc.running():
            self.rss_last = rss_mib(self.proc.pid)
            if self.rss_first is None:
                self.rss_first = self.rss_last
        return self.rss_last

    def scrape(self) -> str | None:
        return scrape(self.metrics_port)

    def metric(self, name: str, text: str | None = None) -> float:
        """Sum of every sample of `name` now (0 if not scraped)."""
        return metric_sum(self.scrape() if text is None else text, name)

    def total(self, name: str) -> float:
        """`name` summed over the incarnations stopped so far and the running one."""
        return self.kept[name] + (self.metric(name) if self.running() else 0.0)

    def _keep(self) -> None:
        text = self.scrape()
        if text is not None:
            for name in KEPT:
                self.kept[name] += self.metric(name, text)
        self.sample_rss()

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye to the group."""
        if self.proc is not None and self.proc.running():
            self._keep()
            self.proc.kill(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM (leaves the group, flushes), SIGKILL after 30 s."""
        if self.proc is not None and self.proc.running():
            self._keep()
            self.proc.stop()

    def log_tail(self, lines: int = 30) -> str:
        return self.proc.log_tail(lines) if self.proc is not None else "(no log)"
