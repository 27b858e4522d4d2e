"""A typed Python client for the mesh's data product APIs.

Answers are parsed into the same pydantic models the server documents in its OpenAPI
contracts (`domains/<d>/contracts/openapi.yaml`); a test checks every method against those
committed files. Errors raise `MeshApiError` carrying the shared error body.

    with MeshClient("http://127.0.0.1:8000", api_key="mesh_...") as mesh:
        day = mesh.daily_revenue(date(2026, 6, 1), region="EU")
        for order in mesh.iter_customer_transactions(1042):
            ...

`MeshClient.in_process(api_key)` talks to the app without a server (notebooks, tests).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from domains.finanzas.api import AccountingReportResponse, FraudScore, FraudScoresPage
from domains.logistica.api import DeliveryPerformanceResponse, ShipmentTrackingResponse
from domains.marketing.api import CampaignMetricsPage, CustomerSegmentsPage
from domains.producto.api import CatalogPage, PriceHistoryResponse
from domains.ventas.api import (
    CustomerTransaction,
    CustomerTransactionsPage,
    DailyRevenueResponse,
    RevenueTrendResponse,
)
from lakehouse.routes import Page

Model = TypeVar("Model", bound=BaseModel)
Item = TypeVar("Item", bound=BaseModel)

# (method, path template) of every endpoint the client calls; checked against the contracts.
ENDPOINTS = {
    "daily_revenue": ("get", "/ventas/v2/daily-revenue"),
    "revenue_trend": ("get", "/ventas/v2/revenue-trend"),
    "customer_transactions": ("get", "/ventas/v2/customers/{customer_id}/transactions"),
    "shipments": ("get", "/logistica/v1/shipments/{order_id}"),
    "delivery_performance": ("get", "/logistica/v1/delivery-performance"),
    "catalog": ("get", "/producto/v1/products"),
    "product_prices": ("get", "/producto/v1/products/{product_id}/prices"),
    "campaign_metrics": ("get", "/marketing/v1/campaign-metrics"),
    "customer_segments": ("get", "/marketing/v1/customer-segments"),
    "accounting_report": ("get", "/finanzas/v1/accounting-reports"),
    "fraud_scores": ("get", "/finanzas/v1/fraud-scores"),
}


class MeshApiError(Exception):
    """An error answer of the API, with its status and the shared error body."""

    def __init__(
        self, status_code: int, error_code: str, message: str, details: Any, headers: httpx.Headers
    ) -> None:
        super().__init__(f"{status_code} {error_code}: {message}")
        self.status_code = status_code
        self.error_code = error_code
        self.message = message
        self.details = details
        self.retry_after = int(headers["Retry-After"]) if "Retry-After" in headers else None


class MeshClient:
    """Typed calls to every domain's data product API with one service account key."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        http: httpx.Client | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._http = http or httpx.Client(base_url=base_url, timeout=timeout)
        if api_key is not None:
            self._http.headers["X-API-Key"] = api_key
        self.last_data_version: int | None = None

    @classmethod
    def in_process(cls, api_key: str) -> MeshClient:
        """A client of the app in this process, no server needed (starts the app lazily)."""
        from fastapi.testclient import TestClient

        from app.api import create_app

        return cls(api_key=api_key, http=TestClient(create_app()))

    def __enter__(self) -> MeshClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self._http.close()

    def _get(self, model: type[Model], endpoint: str, path: dict[str, Any], **query: Any) -> Model:
        _, template = ENDPOINTS[endpoint]
        params = {k: _param(v) for k, v in query.items() if v is not None}
        response = self._http.get(template.format(**path), params=params)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"error_code": f"http_{response.status_code}", "message": response.text}
            raise MeshApiError(
                response.status_code,
                body.get("error_code", f"http_{response.status_code}"),
                body.get("message", ""),
                body.get("details"),
                response.headers,
            )
        if "X-Data-Version" in response.headers:
            self.last_data_version = int(response.headers["X-Data-Version"])
        return model.model_validate(response.json())

    def _pages(self, fetch: Any, page_size: int) -> Iterator[Any]:
        offset: int | None = 0
        while offset is not None:
            page: Page[Any] = fetch(limit=page_size, offset=offset)
            yield from page.items
            offset = page.next_offset

    # ventas
    def daily_revenue(self, date: dt.date, region: str = "ALL") -> DailyRevenueResponse:
        """Revenue of one day, per region (or one region)."""
        return self._get(DailyRevenueResponse, "daily_revenue", {}, date=date, region=region)

    def revenue_trend(
        self, start_date: dt.date, end_date: dt.date, region: str = "ALL"
    ) -> RevenueTrendResponse:
        """Daily revenue series over a window of at most 366 days."""
        return self._get(
            RevenueTrendResponse,
            "revenue_trend",
            {},
            start_date=start_date,
            end_date=end_date,
            region=region,
        )

    def customer_transactions(
        self, customer_id: int, limit: int = 100, offset: int = 0
    ) -> CustomerTransactionsPage:
        """One page of a customer's orders, newest first."""
        return self._get(
            CustomerTransactionsPage,
            "customer_transactions",
            {"customer_id": customer_id},
            limit=limit,
            offset=offset,
        )

    def iter_customer_transactions(
        self, customer_id: int, page_size: int = 500
    ) -> Iterator[CustomerTransaction]:
        """Every order of a customer, newest first, fetched page by page."""
        return self._pages(
            lambda **paging: self.customer_transactions(customer_id, **paging), page_size
        )

    # logistica
    def shipments(self, order_id: int) -> ShipmentTrackingResponse:
        """Tracking of every shipment of an order."""
        return self._get(ShipmentTrackingResponse, "shipments", {"order_id": order_id})

    def delivery_performance(
        self, start_date: dt.date, end_date: dt.date | None = None, region: str = "ALL"
    ) -> DeliveryPerformanceResponse:
        """Delivery performance per day and region."""
        return self._get(
            DeliveryPerformanceResponse,
            "delivery_performance",
            {},
            start_date=start_date,
            end_date=end_date,
            region=region,
        )

    # producto
    def catalog(
        self,
        category: str | None = None,
        brand: str | None = None,
        limit: int = 100,
        offset: int = 0,
        **filters: Any,
    ) -> CatalogPage:
        """One page of the catalog, optionally filtered (subcategory, min/max_price_usd too)."""
        return self._get(
            CatalogPage,
            "catalog",
            {},
            category=category,
            brand=brand,
            limit=limit,
            offset=offset,
            **filters,
        )

    def product_prices(self, product_id: int) -> PriceHistoryResponse:
        """Pricing history of one product, oldest first."""
        return self._get(PriceHistoryResponse, "product_prices", {"product_id": product_id})

    # marketing
    def campaign_metrics(
        self, campaign_id: int | None = None, limit: int = 100, offset: int = 0, **filters: Any
    ) -> CampaignMetricsPage:
        """One page of campaign metrics (filters: start_date, end_date, channel)."""
        return self._get(
            CampaignMetricsPage,
            "campaign_metrics",
            {},
            campaign_id=campaign_id,
            limit=limit,
            offset=offset,
            **filters,
        )

    def customer_segments(
        self, segment: str | None = None, limit: int = 100, offset: int = 0
    ) -> CustomerSegmentsPage:
        """One page of customers with their segment."""
        return self._get(
            CustomerSegmentsPage,
            "customer_segments",
            {},
            segment=segment,
            limit=limit,
            offset=offset,
        )

    # finanzas
    def accounting_report(self, month: str, region: str = "ALL") -> AccountingReportResponse:
        """Monthly accounting report ('YYYY-MM'), totals per region and daily rows."""
        return self._get(
            AccountingReportResponse, "accounting_report", {}, month=month, region=region
        )

    def fraud_scores(
        self, customer_id: int | None = None, limit: int = 100, offset: int = 0, **filters: Any
    ) -> FraudScoresPage:
        """One page of fraud scores (finanzas accounts only; filters: dates, flagged_only)."""
        return self._get(
            FraudScoresPage,
            "fraud_scores",
            {},
            customer_id=customer_id,
            limit=limit,
            offset=offset,
            **filters,
        )

    def iter_fraud_scores(self, page_size: int = 1000, **filters: Any) -> Iterator[FraudScore]:
        """Every fraud score matching the filters, page by page."""
        return self._pages(lambda **paging: self.fraud_scores(**filters, **paging), page_size)


def _param(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return str(value).lower()
    return getattr(value, "value", value)
