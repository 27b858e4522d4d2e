"""Prometheus metrics of the API: requests by endpoint and status, latency, data freshness.

Request metrics are recorded by a plain ASGI middleware (cheaper than Starlette's
BaseHTTPMiddleware) labelled by the route template, e.g. `/ventas/v2/daily-revenue`, so the
label set stays bounded. Freshness is computed when Prometheus scrapes: the age of the newest
Delta commit of every gold data product.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from lakehouse import storage
from lakehouse.config import get_settings
from lakehouse.registry import load_registry

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class FreshnessCollector(Collector):
    """Age and version of every gold data product, read from the Delta logs at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        age = GaugeMetricFamily(
            "mesh_data_product_age_seconds",
            "Seconds since the newest commit of a gold data product",
            labels=["product"],
        )
        slo = GaugeMetricFamily(
            "mesh_data_product_freshness_slo_seconds",
            "Freshness SLO of the owning domain",
            labels=["product"],
        )
        version = GaugeMetricFamily(
            "mesh_data_product_version", "Delta version being served", labels=["product"]
        )
        now = datetime.now(UTC)
        for domain in load_registry():
            for product in domain.data_products:
                commit = storage.latest_commit(
                    get_settings().table_path(domain.name, "gold", product.name)
                )
                if commit is None:
                    continue
                name = product.qualified_name
                age.add_metric([name], (now - commit[1]).total_seconds())
                slo.add_metric([name], domain.slos.freshness.total_seconds())
                version.add_metric([name], commit[0])
        yield age
        yield slo
        yield version


class Metrics:
    """The metric objects of one app, in their own registry (tests build many apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mesh_api_requests_total",
            "API requests by endpoint, method and status code",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mesh_api_request_duration_seconds",
            "API request latency by endpoint",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(FreshnessCollector())


class MetricsMiddleware:
    """ASGI middleware counting every HTTP request by route template and status."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def record_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(endpoint, scope["method"], str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
