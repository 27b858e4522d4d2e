"""Ventas data product API v2: daily revenue per region, served from the gold Delta table."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import polars as pl
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from lakehouse.api import ApiError, ServedProduct, error_responses, product_access

REGIONS = ("LATAM", "NA", "EU", "APAC")
ALL_REGIONS = "ALL"

router = APIRouter(prefix="/ventas/v2", tags=["ventas"])


class DailyRevenue(BaseModel):
    """Revenue of one region on one day (contract v2.1), in `currency`."""

    date: dt.date = Field(description="Revenue date")
    region: str = Field(description="Geographic region: LATAM, NA, EU or APAC")
    revenue_gross: float = Field(description="Revenue before refunds and discounts")
    revenue_net: float = Field(description="Revenue after refunds and discounts")
    transactions_count: int = Field(description="Number of transactions")
    refunds_count: int = Field(description="Number of refunded transactions (v2.1)")
    currency: str = Field(description="ISO currency code of the amounts")
    calculated_at: dt.datetime = Field(description="When the gold table computed this row (UTC)")


class DailyRevenueResponse(BaseModel):
    """Daily revenue for one date: one item per requested region, sorted by region."""

    date: dt.date = Field(description="The requested date")
    items: list[DailyRevenue] = Field(description="One row per region that has data that day")


def _available_range(lf: pl.LazyFrame) -> tuple[dt.date | None, dt.date | None]:
    bounds = lf.select(pl.col("date").min().alias("first"), pl.col("date").max().alias("last"))
    row = bounds.collect().row(0)
    return row[0], row[1]


def _no_data(lf: pl.LazyFrame, date: dt.date, region: str | None) -> ApiError:
    first, last = _available_range(lf)
    what = f"region {region} on {date}" if region else str(date)
    if first is None:
        message = f"no daily revenue for {what}: the table is empty; run `mesh build`"
    else:
        message = (
            f"no daily revenue for {what}; data is available from {first} to {last}, "
            "pick a date in that range"
        )
    return ApiError(
        404,
        "no_data",
        message,
        {"date": date, "region": region, "available_from": first, "available_to": last},
    )


@router.get(
    "/daily-revenue",
    response_model=DailyRevenueResponse,
    summary="Daily revenue by region",
    responses=error_responses(400, 401, 403, 404, 422, 429, 503),
)
def get_daily_revenue(
    served: Annotated[ServedProduct, Depends(product_access("ventas.daily_revenue"))],
    date: Annotated[dt.date, Query(description="Revenue date, YYYY-MM-DD")],
    region: Annotated[
        str | None,
        Query(description="LATAM, NA, EU or APAC; omit it (or pass ALL) for every region"),
    ] = None,
) -> DailyRevenueResponse:
    """Daily revenue for `date`, as `{"date": ..., "items": [...]}`.

    With `region`, `items` holds exactly that region's row; without it (or with `ALL`), one row
    per region that has data that day, sorted by region. Errors use the shared error body:
    400 `unknown_region`, 404 `no_data` (with the available date range), 422 `invalid_request`
    for a malformed date, 503 `product_unavailable` when the gold table has not been built.
    """
    if region == ALL_REGIONS:
        region = None
    if region is not None and region not in REGIONS:
        raise ApiError(
            400,
            "unknown_region",
            f"unknown region {region!r}; use one of {', '.join(REGIONS)} or omit region",
            {"region": region, "valid_regions": list(REGIONS)},
        )
    lf = served.scan()
    predicate = pl.col("date") == date
    if region is not None:
        predicate &= pl.col("region") == region
    rows = lf.filter(predicate).select(list(DailyRevenue.model_fields)).sort("region").collect()
    if rows.is_empty():
        raise _no_data(lf, date, region)
    items = [DailyRevenue.model_validate(row) for row in rows.iter_rows(named=True)]
    return DailyRevenueResponse(date=date, items=items)
