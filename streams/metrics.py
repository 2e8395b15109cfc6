"""The worker's Prometheus metrics: one registry per app, served on GET /metrics."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """Counters of every stage, merges and rejections, lag, and end-to-end latency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_in = Counter(
            "omnijourney_stage_events_in", "Messages a stage consumed.", ["stage"], registry=r
        )
        self.events_out = Counter(
            "omnijourney_stage_events_out", "Messages a stage produced, by topic.",
            ["stage", "topic"], registry=r,
        )  # fmt: skip
        self.repeats = Counter(
            "omnijourney_stage_repeats_dropped",
            "Protocol messages dropped as repeats of ones already applied (replays).",
            ["stage"],
            registry=r,
        )
        self.dead_letters = Counter(
            "omnijourney_dead_letters", "Messages sent to the dead-letter topic.", ["stage"],
            registry=r,
        )  # fmt: skip
        self.violations = Counter(
            "omnijourney_protocol_violations",
            "Protocol messages the core refused (a bug: logged, skipped).",
            ["stage"],
            registry=r,
        )
        self.suppressed = Counter(
            "omnijourney_touchpoints_suppressed",
            "Touchpoints dropped at ingest: they carry an identifier an erasure suppressed.",
            registry=r,
        )
        self.merges = Counter("omnijourney_merges", "Customers merged.", registry=r)
        self.rejections = Counter(
            "omnijourney_link_rejections", "Links refused by a rule.", ["rule"], registry=r
        )
        self.lag = Gauge(
            "omnijourney_consumer_lag", "Messages behind the end of an assigned partition.",
            ["topic", "partition"], registry=r,
        )  # fmt: skip
        self.rewinds = Counter(
            "omnijourney_partition_rewinds",
            "Partitions read again from their commit because it waited on a hole (decision 0018).",
            ["topic", "partition"],
            registry=r,
        )
        self.latency = Histogram(
            "omnijourney_end_to_end_latency_seconds",
            "From a touchpoint's received_at to the journey update it caused.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)
