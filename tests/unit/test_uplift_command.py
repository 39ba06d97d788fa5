"""`churnstream uplift`: alerts of an experiment judged against a simulator's ground truth."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from churnstream.stream.cli.main import main
from churnstream.stream.contract.events import DAY_S
from churnstream.stream.contract.timefmt import rfc3339
from churnstream.stream.devtools.simulator import SimConfig, ground_truth

SIM = SimConfig(users=200, days=40, seed=5, churn_rate=0.4)


def test_uplift_judges_each_alert_by_the_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = ground_truth(SIM)
    truth_file = tmp_path / "sim.truth.json"
    truth.write(truth_file)
    at = truth.start + 10 * DAY_S
    alerts = []
    expected = {True: [0, 0], False: [0, 0]}
    for i, (user_id, user) in enumerate(sorted(truth.users.items())):
        if user.segment != "saas" or user.signup_ts > at:
            continue
        holdout = i % 3 == 0
        churned = user.churn_ts is not None and at < user.churn_ts <= at + 14 * DAY_S
        churned = churned and user.churn_kind == "cancel"
        expected[holdout][0] += 1
        expected[holdout][1] += int(churned)
        alerts.append(
            {
                "alert_id": f"a{i}",
                "kind": "churn_risk",
                "user_id": user_id,
                "segment": "saas",
                "ts": rfc3339(at),
                "horizon_days": 14.0,
                "action": {"code": "check_in", "text": "Call."},
                "holdout": holdout,
                "experiment": "e",
            }
        )
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in alerts))
    assert main(["uplift", str(path), "--truth", str(truth_file), "--json"]) == 0
    (row,) = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["segment"], row["action"]) == ("saas", "check_in")
    assert [row["treated"], row["treated_churned"]] == expected[False]
    assert [row["holdout"], row["holdout_churned"]] == expected[True]
    assert row["treated"] > 20 and row["holdout"] > 10
    assert main(["uplift", str(path), "--truth", str(truth_file)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:2] == ["segment", "action"]
    assert "check_in" in table
