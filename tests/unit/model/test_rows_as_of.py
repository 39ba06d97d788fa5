"""A daily row as of boundary B does not depend on when it is made.

The live worker makes a boundary's rows later than `replay` whenever it waits (for a source or
for the model as of B) while its users' states run ahead. Replayed with a larger lateness, the
rows are made up to two days later in event time; each labelled row (features and label) must
be the same. Before the ring kept days beyond the 28-day window and the price before a change,
5 % of the rows of this history differed (28-day counts lost to the ring, a later plan price).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from churnstream.agents.configure import alert_policy, engine_config
from churnstream.model.labels import Example
from churnstream.model.replay import Replay
from churnstream.model.replay_input import read_records
from churnstream.model.trainer import example_id
from churnstream.stream.contract.events import DAY_S
from churnstream.stream.devtools.simulator import SimConfig, generate, write_jsonl
from churnstream.stream.settings import Settings


def labelled_rows(path: Path, lateness_days: float) -> dict[int, Example]:
    settings = Settings()
    config = engine_config(settings)
    features = dataclasses.replace(config.features, lateness_s=lateness_days * DAY_S)
    replay = Replay(dataclasses.replace(config, features=features), alert_policy(settings))
    learned: dict[int, Example] = {}
    learn = replay.trainer.learn

    def spy(example: Example):  # type: ignore[no-untyped-def]
        learned[example_id(example)] = example
        return learn(example)

    replay.trainer.learn = spy  # type: ignore[method-assign]
    replay.run(read_records(path))
    return learned


def test_rows_made_later_read_the_same_features_and_labels(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    write_jsonl(generate(SimConfig(users=60, days=40, seed=5)), path)
    on_time, later = labelled_rows(path, 1.0), labelled_rows(path, 3.0)
    # Labels fall due later with the larger lateness: the last days are compared on one side.
    common = on_time.keys() & later.keys()
    assert len(common) > 900
    differ = [
        (a.user_id, a.made_at)
        for a, b in ((on_time[k], later[k]) for k in sorted(common))
        if (a.features, a.label) != (b.features, b.label)
    ]
    assert differ == []
