"""Realtime metrics, exported at /metrics in the Prometheus text format."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

CONNECTED = Gauge("postroom_stream_connections", "Open agent stream connections", registry=REGISTRY)
EVENTS = Counter("postroom_stream_events_total", "Events read from the log and dispatched", registry=REGISTRY)
DELIVERIES = Counter("postroom_stream_deliveries_total", "Log events handed to connections", registry=REGISTRY)
DIRECT_WRITES = Counter(
    "postroom_stream_direct_writes_total", "Of those, written straight to the socket (not queued)", registry=REGISTRY
)
SLOW_CLOSED = Counter("postroom_stream_slow_closed_total", "Connections closed for falling behind", registry=REGISTRY)
QUEUE_DEPTH_MAX = Gauge("postroom_stream_queue_depth_max", "Deepest send queue right now", registry=REGISTRY)
QUEUE_DEPTH_SUM = Gauge("postroom_stream_queue_depth_sum", "Frames waiting in all send queues", registry=REGISTRY)
LAG = Histogram(
    "postroom_stream_dispatch_lag_seconds",
    "From the event's commit time to its dispatch",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
LOG_READS = Counter("postroom_stream_log_reads_total", "Reads of the event log by this process's hub", registry=REGISTRY)

# Between processes: whether this process's wake-ups go out and the others' come in.
BROKER_PUBLISHED = Counter("postroom_broker_published_total", "Messages sent through the broker", registry=REGISTRY)
BROKER_PUBLISH_FAILURES = Counter(
    "postroom_broker_publish_failures_total", "Messages given up (broker down or too slow)", registry=REGISTRY
)
BROKER_RECEIVED = Counter("postroom_broker_received_total", "Messages received from the broker", registry=REGISTRY)
BROKER_RECONNECTS = Counter(
    "postroom_broker_reconnects_total", "Listening connections to the broker lost and made again", registry=REGISTRY
)
