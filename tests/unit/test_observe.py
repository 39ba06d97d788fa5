"""The worker probes shared by the integration tests and the soak (stream/devtools/observe.py)."""

from __future__ import annotations

import pytest

from churnstream.stream.devtools.kafka_local import free_port
from churnstream.stream.devtools.observe import WaitTimeout, metric_sum, scrape, wait_until

TEXT = """# HELP churnstream_records_consumed_total Records consumed.
# TYPE churnstream_records_consumed_total counter
churnstream_records_consumed_total{topic="logins"} 10.0
churnstream_records_consumed_total{topic="syncs"} 5.0
churnstream_records_consumed_total_created{topic="logins"} 1.7e9
churnstream_events_held 3.0
"""


def test_samples_are_summed_by_name_and_labels() -> None:
    assert metric_sum(TEXT, "churnstream_records_consumed_total") == 15.0
    assert metric_sum(TEXT, "churnstream_records_consumed_total", topic="syncs") == 5.0
    assert metric_sum(TEXT, "churnstream_events_held") == 3.0
    assert metric_sum(TEXT, "churnstream_records_consumed_total", topic="none") == 0.0
    assert metric_sum(None, "churnstream_events_held") == 0.0


def test_a_wait_that_runs_out_fails_a_test_and_a_drill_alike() -> None:
    with pytest.raises(AssertionError, match="waiting for nothing"):
        wait_until(lambda: 0, 0.0, "nothing")
    with pytest.raises(TimeoutError):
        wait_until(lambda: None, 0.0, "nothing")
    assert issubclass(WaitTimeout, AssertionError) and issubclass(WaitTimeout, TimeoutError)
    assert wait_until(lambda: "ready", 0.0, "something") == "ready"


def test_nothing_answering_reads_as_none() -> None:
    assert scrape(free_port(), timeout=0.5) is None
