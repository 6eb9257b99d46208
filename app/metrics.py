"""Prometheus metrics: HTTP requests, messages by result, queue depth and send rate."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

registry = CollectorRegistry()

http_requests = Counter(
    "tidings_http_requests_total",
    "HTTP requests by route, method and status",
    ["method", "route", "status"],
    registry=registry,
)
http_latency = Histogram(
    "tidings_http_request_seconds",
    "HTTP request latency by route",
    ["route"],
    registry=registry,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
messages = Counter(
    "tidings_messages_total",
    "Issue messages handed to a transport, by result (sent, retry, failed, skipped)",
    ["result"],
    registry=registry,
)
queue_depth = Gauge(
    "tidings_queue_depth", "Deliveries queued or in flight, across every issue", registry=registry
)
send_rate = Gauge(
    "tidings_send_rate",
    "Messages sent per second over the last minute, by every worker (read at each scrape)",
    registry=registry,
)
