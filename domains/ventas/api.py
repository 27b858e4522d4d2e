"""Ventas data product APIs, served from the gold Delta tables.

v2 serves daily revenue, a daily revenue trend and a customer's order history. v1 is the
deprecated shape of daily revenue (`total` instead of `revenue_gross`, no `refunds_count`): it
reads through the same query as v2 and announces its sunset with `Deprecation`, `Sunset` and
`Link` headers until consumers have moved.
"""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime
from typing import Annotated

import polars as pl
from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field

from lakehouse.api import ApiError, ServedProduct, error_responses, product_access
from lakehouse.routes import (
    ALL_REGIONS,
    Page,
    PagingParams,
    ProductRoute,
    RegionFilter,
    bounds,
    check_window,
    example_of,
    page_fields,
    paginate,
    rows_with,
    span,
)

V1_DEPRECATED_ON = dt.date(2026, 7, 1)  # the day v2 became the supported version
V1_SUPPORT_MONTHS = 6  # v1 keeps answering this long after V1_DEPRECATED_ON

API_VERSION = "2.1.0"  # semver of domains/ventas/contracts/openapi.yaml; v1 is deprecated
router = APIRouter(prefix="/ventas/v2", tags=["ventas"], route_class=ProductRoute)
router_v1 = APIRouter(prefix="/ventas/v1", tags=["ventas"], route_class=ProductRoute)

DATE = Query(description="Revenue date, YYYY-MM-DD", examples=["2026-06-01"])
CALCULATED_AT = Field(
    description="When the gold job computed this row (UTC)", examples=["2026-06-30T02:30:00Z"]
)


class DailyRevenue(BaseModel):
    """Revenue of one region on one day (contract v2.1), in `currency`."""

    date: dt.date = Field(description="Revenue date", examples=["2026-06-01"])
    region: str = Field(description="Geographic region: LATAM, NA, EU or APAC", examples=["LATAM"])
    revenue_gross: float = Field(
        description="Revenue before refunds and discounts", examples=[125000.5]
    )
    revenue_net: float = Field(
        description="Revenue after refunds and discounts", examples=[118000.3]
    )
    transactions_count: int = Field(description="Number of transactions", examples=[1543])
    refunds_count: int = Field(description="Number of refunded transactions (v2.1)", examples=[23])
    currency: str = Field(description="ISO currency code of the amounts", examples=["USD"])
    calculated_at: dt.datetime = CALCULATED_AT


class DailyRevenueResponse(BaseModel):
    """Daily revenue for one date: one item per requested region, sorted by region."""

    date: dt.date = Field(description="The requested date", examples=["2026-06-01"])
    items: list[DailyRevenue] = Field(
        description="One row per region that has data that day",
        examples=[[example_of(DailyRevenue)]],
    )


class RevenuePoint(BaseModel):
    """Revenue of one day in a trend, summed over the requested regions, in USD."""

    date: dt.date = Field(description="Revenue date", examples=["2026-06-01"])
    revenue_gross: float = Field(
        description="Sum of completed orders' amounts", examples=[355000.75]
    )
    revenue_net: float = Field(description="Gross revenue minus refunds paid", examples=[342000.3])
    transactions_count: int = Field(description="Number of completed orders", examples=[4443])
    refunds_count: int = Field(description="Number of refunds paid that day", examples=[49])
    currency: str = Field(description="ISO currency code of the amounts", examples=["USD"])
    calculated_at: dt.datetime = Field(
        description="When the gold job computed the newest row of that day (UTC)",
        examples=["2026-06-30T02:30:00Z"],
    )


class RevenueTrendResponse(BaseModel):
    """Daily revenue series over a date window, oldest day first; days without data are absent."""

    region: str = Field(description="The region summed, or ALL for every region", examples=["ALL"])
    start_date: dt.date = Field(description="First day of the window", examples=["2026-06-01"])
    end_date: dt.date = Field(description="Last day of the window", examples=["2026-06-30"])
    items: list[RevenuePoint] = Field(
        description="One point per day with data, sorted by date",
        examples=[[example_of(RevenuePoint)]],
    )


class CustomerTransaction(BaseModel):
    """One order of a customer; identities and other personal data are never served."""

    order_id: int = Field(description="Order identifier, shared across domains", examples=[98231])
    order_ts: dt.datetime = Field(
        description="When the order was placed (UTC)", examples=["2026-06-01T14:05:09Z"]
    )
    order_date: dt.date = Field(
        description="Calendar day (UTC) of order_ts", examples=["2026-06-01"]
    )
    region: str = Field(description="Marketplace region of the order", examples=["EU"])
    currency: str = Field(description="Currency the customer paid in", examples=["EUR"])
    payment_method: str = Field(description="How the customer paid", examples=["card"])
    basket_size: int = Field(description="Number of items in the order", examples=[3])
    amount: float = Field(description="Order amount in the order's currency", examples=[84.6])
    amount_usd: float = Field(description="Order amount converted to USD", examples=[91.96])
    status: str = Field(description="Final status: completed or cancelled", examples=["completed"])
    refunded: bool = Field(
        description="True when a refund was paid for the order", examples=[False]
    )
    refund_amount_usd: float = Field(
        description="Total refunded in USD; 0 when not refunded", examples=[0.0]
    )
    calculated_at: dt.datetime = CALCULATED_AT


class CustomerTransactionsPage(Page[CustomerTransaction]):
    """A page of one customer's orders, newest first."""


class DailyRevenueV1(BaseModel):
    """Revenue of one region on one day in the v1 shape: `total` is v2's `revenue_gross`."""

    date: dt.date = Field(description="Revenue date", examples=["2026-06-01"])
    region: str = Field(description="Geographic region: LATAM, NA, EU or APAC", examples=["LATAM"])
    total: float = Field(
        description="Revenue before refunds and discounts (v2: revenue_gross)", examples=[125000.5]
    )
    revenue_net: float = Field(
        description="Revenue after refunds and discounts", examples=[118000.3]
    )
    transactions_count: int = Field(description="Number of transactions", examples=[1543])
    currency: str = Field(description="ISO currency code of the amounts", examples=["USD"])
    calculated_at: dt.datetime = CALCULATED_AT


class DailyRevenueV1Response(BaseModel):
    """Daily revenue for one date in the v1 shape, sorted by region."""

    date: dt.date = Field(description="The requested date", examples=["2026-06-01"])
    items: list[DailyRevenueV1] = Field(
        description="One row per region that has data that day",
        examples=[[example_of(DailyRevenueV1)]],
    )


def _add_months(day: dt.date, months: int) -> dt.date:
    years, month = divmod(day.month - 1 + months, 12)
    return day.replace(year=day.year + years, month=month + 1)


V1_SUNSET = dt.datetime.combine(_add_months(V1_DEPRECATED_ON, V1_SUPPORT_MONTHS), dt.time(), dt.UTC)
V1_HEADERS = {
    "Deprecation": "true",
    "Sunset": format_datetime(V1_SUNSET, usegmt=True),
    "Link": '</ventas/v2/daily-revenue>; rel="successor-version"',
}
V1_HEADER_DOCS = {
    "Deprecation": {"description": "Always `true`: v1 is deprecated", "schema": {"type": "string"}},
    "Sunset": {
        "description": f"HTTP-date after which v1 stops answering: {V1_HEADERS['Sunset']}",
        "schema": {"type": "string"},
    },
    "Link": {
        "description": "The successor endpoint (rel=successor-version)",
        "schema": {"type": "string"},
    },
}


def _no_data(lf: pl.LazyFrame, what: str, details: dict[str, object]) -> ApiError:
    first, last = bounds(lf, "date")
    if first is None:
        message = f"no daily revenue for {what}: the table is empty; run `mesh build`"
    else:
        message = (
            f"no daily revenue for {what}; data is available from {first} to {last}, "
            "pick a date in that range"
        )
    return ApiError(
        404, "no_data", message, {**details, "available_from": first, "available_to": last}
    )


def daily_revenue_rows(served: ServedProduct, date: dt.date, region: str | None) -> pl.DataFrame:
    """The gold rows of `date` (one region, or all of them), sorted by region; 404 when none."""
    lf = served.scan()
    predicate = pl.col("date") == date
    if region is not None:
        predicate &= pl.col("region") == region
    rows = lf.filter(predicate).select(list(DailyRevenue.model_fields)).sort("region").collect()
    if rows.is_empty():
        what = f"region {region} on {date}" if region else str(date)
        raise _no_data(lf, what, {"date": date, "region": region})
    return rows


@router.get(
    "/daily-revenue",
    response_model=DailyRevenueResponse,
    summary="Daily revenue by region",
    responses=error_responses(400, 401, 403, 404, 422, 429, 503),
)
def get_daily_revenue(
    served: Annotated[ServedProduct, Depends(product_access("ventas.daily_revenue"))],
    date: Annotated[dt.date, DATE],
    region: RegionFilter,
) -> DailyRevenueResponse:
    """Daily revenue for `date`, as `{"date": ..., "items": [...]}`.

    With `region`, `items` holds exactly that region's row; without it (or with `ALL`), one row
    per region that has data that day, sorted by region. Errors use the shared error body:
    400 `unknown_region`, 404 `no_data` (with the available date range), 422 `invalid_request`
    for a malformed date, 503 `product_unavailable` when the gold table has not been built.
    """
    rows = daily_revenue_rows(served, date, region)
    items = [DailyRevenue.model_validate(row) for row in rows.iter_rows(named=True)]
    return DailyRevenueResponse(date=date, items=items)


@router.get(
    "/revenue-trend",
    response_model=RevenueTrendResponse,
    summary="Daily revenue trend over a date window",
    responses=error_responses(400, 401, 403, 404, 422, 429, 503),
)
def get_revenue_trend(
    served: Annotated[ServedProduct, Depends(product_access("ventas.daily_revenue"))],
    start_date: Annotated[
        dt.date, Query(description="First day, YYYY-MM-DD", examples=["2026-06-01"])
    ],
    end_date: Annotated[
        dt.date, Query(description="Last day, included, YYYY-MM-DD", examples=["2026-06-30"])
    ],
    region: RegionFilter,
) -> RevenueTrendResponse:
    """Revenue per day from `start_date` to `end_date`, summed over `region` (default all).

    At most 366 days per request. Errors: 400 `invalid_date_range` (start after end),
    400 `date_range_too_long`, 400 `unknown_region`, 404 `no_data` when no day of the window has
    revenue (with the available date range), 422 `invalid_request` for a malformed date.
    """
    check_window(start_date, end_date)
    lf = served.scan()
    predicate = pl.col("date").is_between(start_date, end_date)
    if region is not None:
        predicate &= pl.col("region") == region
    rows = (
        lf.filter(predicate)
        .group_by("date")
        .agg(
            pl.col("revenue_gross", "revenue_net").sum().round(2),
            pl.col("transactions_count", "refunds_count").sum(),
            pl.col("currency").first(),
            pl.col("calculated_at").max(),
        )
        .sort("date")
        .collect()
    )
    if rows.is_empty():
        where = f" in region {region}" if region else ""
        what = f"{start_date} to {end_date}{where}"
        details = {"start_date": start_date, "end_date": end_date, "region": region}
        raise _no_data(lf, what, details)
    items = [RevenuePoint.model_validate(row) for row in rows.iter_rows(named=True)]
    return RevenueTrendResponse(
        region=region or ALL_REGIONS, start_date=start_date, end_date=end_date, items=items
    )


@router.get(
    "/customers/{customer_id}/transactions",
    response_model=CustomerTransactionsPage,
    summary="A customer's orders, paginated",
    responses=error_responses(401, 403, 404, 422, 429, 503),
)
def get_customer_transactions(
    served: Annotated[
        ServedProduct, Depends(product_access("ventas.customer_transaction_history"))
    ],
    customer_id: Annotated[int, Path(description="The customer", examples=[1042])],
    paging: PagingParams,
) -> CustomerTransactionsPage:
    """Orders of `customer_id`, newest first (by order time, then order id), one page at a time.

    Only order facts are served: no names, e-mails, phones or their tokens. Errors: 404
    `unknown_customer` when the customer has no orders (with the customer id range), 422
    `invalid_request` for a bad `limit` (1..1000) or `offset` (>= 0).
    """
    orders, (low, high) = rows_with(
        served, "customer_id", customer_id, list(CustomerTransaction.model_fields)
    )
    rows, total = paginate(
        orders.drop("customer_id").lazy(), ["order_ts", "order_id"], paging, descending=True
    )
    if total == 0:
        raise ApiError(
            404,
            "unknown_customer",
            f"customer {customer_id} has no orders in ventas.customer_transaction_history; "
            f"customers with orders have ids {span(low, high)}",
            {"customer_id": customer_id, "min_customer_id": low, "max_customer_id": high},
        )
    items = [CustomerTransaction.model_validate(row) for row in rows.iter_rows(named=True)]
    return CustomerTransactionsPage(**page_fields(items, total, paging))


@router_v1.get(
    "/daily-revenue",
    response_model=DailyRevenueV1Response,
    summary="Daily revenue by region (v1, deprecated: use /ventas/v2/daily-revenue)",
    deprecated=True,
    responses={
        200: {"headers": V1_HEADER_DOCS},
        **error_responses(400, 401, 403, 404, 422, 429, 503),
    },
)
def get_daily_revenue_v1(
    served: Annotated[ServedProduct, Depends(product_access("ventas.daily_revenue"))],
    response: Response,
    date: Annotated[dt.date, DATE],
    region: RegionFilter,
) -> DailyRevenueV1Response:
    """Daily revenue for `date` in the v1 shape, sunset 6 months after its deprecation.

    Same data and errors as v2, with `total` for v2's `revenue_gross` and without `refunds_count`.
    Successful answers carry `Deprecation: true`, `Sunset` (the day v1 goes away) and a `Link`
    to the successor, /ventas/v2/daily-revenue.
    """
    response.headers.update(V1_HEADERS)
    rows = daily_revenue_rows(served, date, region).rename({"revenue_gross": "total"})
    rows = rows.select(list(DailyRevenueV1.model_fields))
    items = [DailyRevenueV1.model_validate(row) for row in rows.iter_rows(named=True)]
    return DailyRevenueV1Response(date=date, items=items)


routers = [router_v1, router]
