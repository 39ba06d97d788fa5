"""The Faust application factory: one app per worker process, built from Settings."""

from __future__ import annotations

import faust

from churnstream.agents.web_access import web_token
from churnstream.stream.kafka.client import broker_credentials
from churnstream.stream.settings import Settings

# What the consumer fetches of one partition at a time (aiokafka `max_partition_fetch_bytes`,
# Faust's default 1 MiB: 4,000-7,000 input records). Catching up, the aligner's back-pressure
# (agents/ordering.py) reads on only the partitions at the event-time frontier; a paused one
# still holds a fetch, and when it is read again (the frontier moved to it, or the held events
# drained and every partition is) it hands that over whole: its events beyond the frontier
# wait. So about one fetch per assigned partition is held on top of the high mark (800 x 75
# catch-up, 24 partitions, 1 MiB: up to 117,550-168,383 events held). A smaller fetch bounds
# that (the broker still returns a larger record batch whole).
CONSUMER_MAX_FETCH_BYTES = 128 * 1024
# Records handed out but not yet taken in a batch (Faust's channel queue): in flight when a
# pause is decided, so they too come on top of the aligner's high mark.
STREAM_BUFFER_MAXSIZE = 16384


def create_app(settings: Settings, *, bootstrap: str | None = None) -> faust.App:
    """Build the Faust app with churnstream's agents, tables and web views registered."""
    servers = bootstrap or settings.bootstrap_servers
    if not servers:
        raise ValueError("no Kafka bootstrap servers: set KAFKA_BOOTSTRAP_SERVERS")
    broker = ";".join(f"kafka://{s.strip()}" for s in servers.split(",") if s.strip())
    web_token(settings)  # refuses a read API beyond loopback without a token, before anything
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=broker,
        broker_credentials=broker_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir),
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        # Bind where told; advertise (to the other workers, which route read API requests to
        # a user's owner) an address they can reach.
        web_bind=settings.web_host,
        web_host=settings.web_advertised_host or settings.web_host,
        web_port=settings.web_port,
        # Faust's own views are not churnstream's: `/table/...` serves raw stored records and
        # `/router/` the assignment, with no access control.
        web_router_enabled=False,
        web_tables_enabled=False,
        # Agents ack in batches after each state flush; commit often so a crash redoes little.
        broker_commit_interval=1.0,
        stream_buffer_maxsize=STREAM_BUFFER_MAXSIZE,
        consumer_max_fetch_size=CONSUMER_MAX_FETCH_BYTES,
        producer_linger_ms=5,
        producer_acks=-1,
    )
    from churnstream.agents import register

    register(app, settings, servers)
    return app
