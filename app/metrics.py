"""Prometheus metrics: HTTP requests, messages by result, queue depth and send rate.

The metrics (and the Prometheus client, ~1.5 MB of a process) are made when one is first
used, not when this module is imported: a `tidings worker` has no HTTP, so nothing could
ever read what it counted; `tidings worker` says so (`exported = False`) and the
dispatcher's count_messages then counts nothing and loads nothing (issue 15's memory).
A `tidings serve` exports them at /metrics, embedded dispatcher included.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what __getattr__ makes, typed for the callers
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    registry: CollectorRegistry
    http_requests: Counter
    http_latency: Histogram
    messages: Counter
    queue_depth: Gauge
    send_rate: Gauge

exported = True  # False in a process without /metrics: count_messages is then a no-op
_made: dict[str, Any] = {}


def _make() -> dict[str, Any]:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    registry = CollectorRegistry()
    return {
        "registry": registry,
        "http_requests": Counter(
            "tidings_http_requests_total",
            "HTTP requests by route, method and status",
            ["method", "route", "status"],
            registry=registry,
        ),
        "http_latency": Histogram(
            "tidings_http_request_seconds",
            "HTTP request latency by route",
            ["route"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        ),
        "messages": Counter(
            "tidings_messages_total",
            "Issue messages handed to a transport, by result (sent, retry, failed, skipped)",
            ["result"],
            registry=registry,
        ),
        "queue_depth": Gauge(
            "tidings_queue_depth",
            "Deliveries queued or in flight, across every issue",
            registry=registry,
        ),
        "send_rate": Gauge(
            "tidings_send_rate",
            "Messages sent per second over the last minute, by every worker (read at each scrape)",
            registry=registry,
        ),
    }


def __getattr__(name: str) -> Any:
    """`metrics.registry`, `metrics.messages`, ...: made together at the first use of one."""
    if not _made and not name.startswith("__"):
        _made.update(_make())
    try:
        return _made[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def count_messages(result: str, n: int) -> None:
    """Count `n` issue messages with this result, where /metrics can read them."""
    if exported:
        __getattr__("messages").labels(result).inc(n)


@functools.lru_cache(maxsize=1024)
def _request_children(method: str, route: str, status: int) -> tuple[Any, Any]:
    return (__getattr__("http_requests").labels(method, route, str(status)),
            __getattr__("http_latency").labels(route))  # fmt: skip


def count_request(method: str, route: str, status: int, seconds: float) -> None:
    """One answered request, under the labels MetricsMiddleware counts by; the fast paths
    (which answer ahead of it) call this too, with each label set's children bound once."""
    requests, latency = _request_children(method, route, status)
    requests.inc()
    latency.observe(seconds)
