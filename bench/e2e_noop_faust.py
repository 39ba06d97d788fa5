"""Baseline (b) of the end-to-end benchmark: a Faust agent that does nothing with its records.

Configured like churnstream's own app (churnstream.agents.app.create_app: raw serializers, the same
commit interval and stream buffer) so that the difference to the worker is the work done, not
the Faust settings. Run by bench/e2e.py:

    python bench/e2e_noop_faust.py --bootstrap HOST:PORT --app-id ID --data-dir DIR \
        --web-port PORT TOPIC [TOPIC ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import faust


def build_app(args: argparse.Namespace) -> faust.App:
    """The no-op app: one agent, concurrency 1, over every topic in `args.topics`."""
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    app = faust.App(
        args.app_id,
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        datadir=args.data_dir,
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        web_port=args.web_port,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=16384,
    )
    topic = app.topic(
        *args.topics,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    @app.agent(topic, name="noop", concurrency=1)
    async def noop(stream: Any) -> None:
        async for _ in stream:
            pass

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--web-port", type=int, required=True)
    parser.add_argument("topics", nargs="+")
    args = parser.parse_args()
    worker = faust.Worker(build_app(args), loglevel="warning")
    worker.spinner = None  # as churnstream's worker: else the root logger is set to DEBUG
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
