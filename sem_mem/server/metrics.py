"""Prometheus metrics on a per-application registry (never the process-global one).

* ``semmem_http_request_duration_seconds{method, route, status}`` histogram of latency;
* ``semmem_memories{namespace}`` active memories, ``semmem_l1_hit_rate{namespace}``,
  ``semmem_l1_hits_total`` / ``semmem_l1_misses_total`` for each namespace open in this
  process. ``/metrics`` only shows the caller's namespace when API keys are configured.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metrics", "MetricsMiddleware"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _MemoryCollector(Collector):
    """Reads counts and L1 figures when scraped (``source`` yields (namespace, memory))."""

    def __init__(self, source: Callable[[], Iterable[tuple[str, Any]]]) -> None:
        self.source = source
        self.only: str | None = None

    def collect(self) -> Iterator[Any]:
        count = GaugeMetricFamily("semmem_memories", "Active memories", labels=["namespace"])
        rate = GaugeMetricFamily("semmem_l1_hit_rate", "L1 cache hit rate", labels=["namespace"])
        hits = CounterMetricFamily("semmem_l1_hits", "L1 cache hits", labels=["namespace"])
        misses = CounterMetricFamily("semmem_l1_misses", "L1 cache misses", labels=["namespace"])
        for namespace, memory in self.source():
            if self.only is not None and namespace != self.only:
                continue
            l1 = memory.cache.stats()
            count.add_metric([namespace], float(len(memory)))
            rate.add_metric([namespace], float(l1["hit_rate"]))
            hits.add_metric([namespace], float(l1["hits"]))
            misses.add_metric([namespace], float(l1["misses"]))
        yield from (count, rate, hits, misses)


class Metrics:
    """The registry of one application."""

    def __init__(self, memories: Callable[[], Iterable[tuple[str, Any]]]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.latency = Histogram(
            "semmem_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=_BUCKETS,
        )
        self._memories = _MemoryCollector(memories)
        self.registry.register(self._memories)
        self._scrape = threading.Lock()

    def render(self, namespace: str | None) -> bytes:
        """The text exposition; with ``namespace`` only that namespace's memory figures.

        Called in a worker thread (it counts memories in the store).
        """
        with self._scrape:  # `only` is per scrape: one scrape at a time
            self._memories.only = namespace
            return generate_latest(self.registry)


class MetricsMiddleware:
    """Times every HTTP request, labelled by route template (not the raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.latency.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - start
            )
