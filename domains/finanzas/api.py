"""Finanzas data product API v1: monthly accounting reports and (restricted) fraud scores."""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Annotated

import polars as pl
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from domains.finanzas.pipeline import difference_pct
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
    span,
)

MONTH_PATTERN = r"^[1-9]\d{3}-(0[1-9]|1[0-2])$"

API_VERSION = "1.0.0"  # semver of domains/finanzas/contracts/openapi.yaml; major = path prefix
router = APIRouter(prefix="/finanzas/v1", tags=["finanzas"], route_class=ProductRoute)

CALCULATED_AT = Field(
    description="When the gold job computed this row (UTC)", examples=["2026-06-30T02:30:00Z"]
)


class AccountingDay(BaseModel):
    """Payments booked against ventas revenue for one region on one day, in USD."""

    date: dt.date = Field(description="Calendar day (UTC)", examples=["2026-06-01"])
    region: str = Field(description="Marketplace region", examples=["LATAM"])
    currency: str = Field(description="Currency of every amount; always USD", examples=["USD"])
    revenue_gross_usd: float = Field(description="Succeeded payments", examples=[38575.61])
    chargebacks_usd: float = Field(description="Chargebacks", examples=[120.5])
    payments_count: int = Field(description="Payment attempts", examples=[412])
    failed_payments_count: int = Field(description="Failed payment attempts", examples=[9])
    ventas_revenue_gross_usd: float = Field(
        description="ventas.daily_revenue's revenue_gross for the same day and region",
        examples=[38575.61],
    )
    difference_pct: float = Field(
        description="100 * (revenue_gross_usd - ventas_revenue_gross_usd) / "
        "ventas_revenue_gross_usd; may be negative",
        examples=[0.0],
    )
    unmatched_payments_usd: float = Field(
        description="Succeeded payments whose order ventas does not have", examples=[50.26]
    )
    calculated_at: dt.datetime = CALCULATED_AT


class AccountingTotal(BaseModel):
    """One region's accounting totals over the month, in USD."""

    region: str = Field(description="Marketplace region", examples=["LATAM"])
    days_count: int = Field(description="Days of the month with a report", examples=[30])
    currency: str = Field(description="Currency of every amount; always USD", examples=["USD"])
    revenue_gross_usd: float = Field(description="Succeeded payments", examples=[1157268.3])
    chargebacks_usd: float = Field(description="Chargebacks", examples=[3615.0])
    payments_count: int = Field(description="Payment attempts", examples=[12360])
    failed_payments_count: int = Field(description="Failed payment attempts", examples=[270])
    ventas_revenue_gross_usd: float = Field(
        description="ventas' gross revenue over the same days", examples=[1157268.3]
    )
    difference_pct: float = Field(
        description="difference_pct of the month's totals (0 when both are 0)", examples=[0.0]
    )
    unmatched_payments_usd: float = Field(
        description="Succeeded payments whose order ventas does not have", examples=[1507.8]
    )
    calculated_at: dt.datetime = Field(
        description="When the gold job computed the newest row of the month (UTC)",
        examples=["2026-06-30T02:30:00Z"],
    )


class AccountingReportResponse(BaseModel):
    """The accounting report of one month: totals per region and the daily rows behind them."""

    month: str = Field(description="The requested month, YYYY-MM", examples=["2026-06"])
    region: str = Field(description="The requested region, or ALL", examples=["ALL"])
    totals: list[AccountingTotal] = Field(
        description="One row per region with data, sorted by region",
        examples=[[example_of(AccountingTotal)]],
    )
    days: list[AccountingDay] = Field(
        description="The daily rows, sorted by date then region",
        examples=[[example_of(AccountingDay)]],
    )


class FraudScore(BaseModel):
    """Fraud risk of one customer on one payment day."""

    customer_id: int = Field(
        description="Customer identifier, shared across domains", examples=[577]
    )
    date: dt.date = Field(
        description="Calendar day (UTC) of the payments scored", examples=["2026-06-01"]
    )
    payments_count: int = Field(description="Payment attempts that day", examples=[2])
    avg_risk_score: float = Field(
        description="Mean risk score of the attempts, 0..1", examples=[0.41]
    )
    max_risk_score: float = Field(
        description="Highest risk score of the attempts, 0..1", examples=[0.93]
    )
    chargebacks_90d: int = Field(description="Chargebacks in the 90 days up to date", examples=[1])
    fraud_flag: bool = Field(description="True when flagged for review", examples=[True])
    calculated_at: dt.datetime = CALCULATED_AT


class FraudScoresPage(Page[FraudScore]):
    """A page of fraud scores, newest day first, then by customer id."""


def _month_days(month: str) -> tuple[dt.date, dt.date]:
    year, number = (int(part) for part in month.split("-"))
    return dt.date(year, number, 1), dt.date(year, number, calendar.monthrange(year, number)[1])


def _totals(days: pl.DataFrame) -> pl.DataFrame:
    """Month totals per region of the daily accounting rows."""
    amounts = pl.col(
        "revenue_gross_usd", "chargebacks_usd", "ventas_revenue_gross_usd", "unmatched_payments_usd"
    )
    return (
        days.group_by("region")
        .agg(
            pl.len().alias("days_count"),
            pl.col("currency").first(),
            amounts.sum().round(2),
            pl.col("payments_count", "failed_payments_count").sum(),
            pl.col("calculated_at").max(),
        )
        .with_columns(
            difference_pct=difference_pct(
                pl.col("revenue_gross_usd"), pl.col("ventas_revenue_gross_usd")
            )
        )
        .sort("region")
    )


@router.get(
    "/accounting-reports",
    response_model=AccountingReportResponse,
    summary="Monthly accounting report by region",
    responses=error_responses(400, 401, 403, 404, 422, 429, 503),
)
def get_accounting_report(
    served: Annotated[ServedProduct, Depends(product_access("finanzas.accounting_reports"))],
    month: Annotated[
        str, Query(pattern=MONTH_PATTERN, description="Month, YYYY-MM", examples=["2026-06"])
    ],
    region: RegionFilter,
) -> AccountingReportResponse:
    """Payments reconciled with ventas revenue for `month`: totals per region and daily rows.

    Errors: 400 `unknown_region`, 404 `no_data` when the month has no report (with the
    available date range), 422 `invalid_request` for a month not written YYYY-MM.
    """
    first, last = _month_days(month)
    lf = served.scan()
    predicate = pl.col("date").is_between(first, last)
    if region is not None:
        predicate &= pl.col("region") == region
    days = (
        lf.filter(predicate)
        .select(list(AccountingDay.model_fields))
        .sort("date", "region")
        .collect()
    )
    if days.is_empty():
        low, high = bounds(lf, "date")
        where = f" in region {region}" if region else ""
        raise ApiError(
            404,
            "no_data",
            f"no accounting report for {month}{where}; reports exist {span(low, high)}",
            {"month": month, "region": region, "available_from": low, "available_to": high},
        )
    return AccountingReportResponse(
        month=month,
        region=region or ALL_REGIONS,
        totals=[AccountingTotal.model_validate(r) for r in _totals(days).iter_rows(named=True)],
        days=[AccountingDay.model_validate(r) for r in days.iter_rows(named=True)],
    )


@router.get(
    "/fraud-scores",
    response_model=FraudScoresPage,
    summary="Fraud scores by customer and date window, paginated (finanzas accounts only)",
    responses=error_responses(400, 401, 403, 404, 422, 429, 503),
)
def get_fraud_scores(
    served: Annotated[ServedProduct, Depends(product_access("finanzas.fraud_scores"))],
    paging: PagingParams,
    customer_id: Annotated[
        int | None, Query(description="Only this customer", examples=[577])
    ] = None,
    start_date: Annotated[
        dt.date | None, Query(description="First payment day, YYYY-MM-DD", examples=["2026-06-01"])
    ] = None,
    end_date: Annotated[
        dt.date | None,
        Query(description="Last payment day, included, YYYY-MM-DD", examples=["2026-06-30"]),
    ] = None,
    flagged_only: Annotated[
        bool, Query(description="Only rows flagged for review", examples=[True])
    ] = False,
) -> FraudScoresPage:
    """Daily fraud risk per customer, newest day first, then by customer id.

    The product is keyed by customer and payment day (a payment's customer and day are in
    finanzas.payment_transactions). Restricted: only finanzas' own accounts may read it, others
    get 403 `restricted_product`. Errors: 400 `invalid_date_range`, 404 `unknown_customer` for a
    customer without any score (with the id range), 422 `invalid_request` for bad paging or dates.
    """
    check_window(start_date, end_date, max_days=None)
    predicate = pl.lit(True)
    if customer_id is not None:
        predicate &= pl.col("customer_id") == customer_id
    if start_date is not None:
        predicate &= pl.col("date") >= start_date
    if end_date is not None:
        predicate &= pl.col("date") <= end_date
    if flagged_only:
        predicate &= pl.col("fraud_flag")
    lf = served.scan()
    scores = lf.filter(predicate).select(list(FraudScore.model_fields))
    rows, total = paginate(scores, ["date", "customer_id"], paging, descending=[True, False])
    if total == 0 and customer_id is not None:
        scored = lf.filter(pl.col("customer_id") == customer_id).select(pl.len()).collect().item()
        if not scored:
            low, high = bounds(lf, "customer_id")
            raise ApiError(
                404,
                "unknown_customer",
                f"customer {customer_id} has no fraud score; scored customers have ids "
                f"{span(low, high)}",
                {"customer_id": customer_id, "min_customer_id": low, "max_customer_id": high},
            )
    items = [FraudScore.model_validate(row) for row in rows.iter_rows(named=True)]
    return FraudScoresPage(**page_fields(items, total, paging))
