"""Deterministic customer simulator of the three businesses churnstream serves.

`generate(config)` yields contract records (with optional delivery faults) in event-time order;
`ground_truth(config)` tells what the hidden churn process did (cancels, silent dropouts, an
honest oracle), and `churned_within` judges a prediction against it.
Pure: no Kafka imports (see `churnstream.stream.devtools.simulator.kafka_sink`), no wall clock.
"""

from churnstream.stream.devtools.simulator.config import SimConfig
from churnstream.stream.devtools.simulator.generator import generate, ground_truth
from churnstream.stream.devtools.simulator.jsonl import read_jsonl, write_jsonl
from churnstream.stream.devtools.simulator.records import SimRecord
from churnstream.stream.devtools.simulator.truth import (
    GroundTruth,
    UserTruth,
    churned_within,
    truth_path,
)

__all__ = [
    "GroundTruth",
    "SimConfig",
    "SimRecord",
    "UserTruth",
    "churned_within",
    "generate",
    "ground_truth",
    "read_jsonl",
    "truth_path",
    "write_jsonl",
]
