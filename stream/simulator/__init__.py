"""Deterministic customer simulator of the three businesses churnstream serves.

`generate(config)` yields contract records (with optional delivery faults) in event-time order;
`ground_truth(config)` tells what the hidden churn process did, for judging model quality.
Pure: no Kafka imports (see `stream.simulator.kafka_sink`), no wall clock.
"""

from stream.simulator.config import SimConfig
from stream.simulator.generator import generate, ground_truth
from stream.simulator.jsonl import read_jsonl, write_jsonl
from stream.simulator.records import SimRecord
from stream.simulator.truth import GroundTruth, UserTruth, truth_path

__all__ = [
    "GroundTruth",
    "SimConfig",
    "SimRecord",
    "UserTruth",
    "generate",
    "ground_truth",
    "read_jsonl",
    "truth_path",
    "write_jsonl",
]
