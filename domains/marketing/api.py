"""Marketing data product API v1: campaign metrics and customer segments, paginated."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

import polars as pl
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from lakehouse.api import ApiError, ServedProduct, error_responses, product_access
from lakehouse.routes import (
    Page,
    PagingParams,
    ProductRoute,
    bounds,
    check_window,
    page_fields,
    paginate,
    span,
)

API_VERSION = "1.0.0"  # semver of domains/marketing/contracts/openapi.yaml; major = path prefix
router = APIRouter(prefix="/marketing/v1", tags=["marketing"], route_class=ProductRoute)

CALCULATED_AT = Field(
    description="When the gold job computed this row (UTC)", examples=["2026-06-30T02:30:00Z"]
)


class Channel(StrEnum):
    """Channel a campaign is sent on."""

    EMAIL = "email"
    PUSH = "push"
    SMS = "sms"


class Segment(StrEnum):
    """Marketing segment of a customer."""

    CHAMPION = "champion"
    LOYAL = "loyal"
    NEW = "new"
    AT_RISK = "at_risk"
    HIBERNATING = "hibernating"


class CampaignMetrics(BaseModel):
    """Budget, funnel and attributed revenue of one campaign."""

    campaign_id: int = Field(description="Campaign identifier, shared across domains", examples=[1])
    name: str = Field(description="Campaign name", examples=["home-push-1"])
    channel: str = Field(description="Channel: email, push or sms", examples=["push"])
    target_category: str = Field(description="Product category promoted", examples=["home"])
    start_date: dt.date = Field(description="First day of the campaign", examples=["2026-03-01"])
    end_date: dt.date = Field(description="Last day of the campaign", examples=["2026-03-21"])
    budget_usd: float = Field(description="Campaign budget in USD", examples=[25000.0])
    sends: int = Field(description="Messages sent", examples=[52000])
    opens: int = Field(description="Messages opened", examples=[11400])
    clicks: int = Field(description="Messages clicked", examples=[2540])
    conversions: int = Field(description="Orders attributed to the campaign", examples=[827])
    open_rate: float = Field(description="opens / sends, 0..1", examples=[0.2192])
    click_rate: float = Field(description="clicks / sends, 0..1", examples=[0.0488])
    conversion_rate: float = Field(description="conversions / sends, 0..1", examples=[0.0159])
    attributed_revenue_usd: float = Field(
        description="Revenue attributed to the campaign in USD", examples=[61731.66]
    )
    calculated_at: dt.datetime = CALCULATED_AT


class CampaignMetricsPage(Page[CampaignMetrics]):
    """A page of campaign metrics, by campaign id."""


class CustomerSegment(BaseModel):
    """The current marketing segment of one customer and the behaviour behind it; no PII."""

    customer_id: int = Field(description="Customer identifier, shared across domains", examples=[2])
    segment: str = Field(
        description="champion, loyal, new, at_risk or hibernating", examples=["champion"]
    )
    recency_days: int | None = Field(
        description="Days since the last order; null when the customer never ordered", examples=[8]
    )
    orders_90d: int = Field(description="Orders in the last 90 days", examples=[17])
    spend_90d_usd: float = Field(
        description="Spend in the last 90 days in USD", examples=[16275.15]
    )
    emails_30d: int = Field(description="Campaign emails sent in the last 30 days", examples=[4])
    open_rate_30d: float | None = Field(
        description="Share of those emails opened, 0..1; null without emails", examples=[0.25]
    )
    calculated_at: dt.datetime = CALCULATED_AT


class CustomerSegmentsPage(Page[CustomerSegment]):
    """A page of customer segments, by customer id."""


@router.get(
    "/campaign-metrics",
    response_model=CampaignMetricsPage,
    summary="Campaign metrics by campaign and date window, paginated",
    responses=error_responses(400, 401, 403, 404, 422, 429, 503),
)
def get_campaign_metrics(
    served: Annotated[ServedProduct, Depends(product_access("marketing.campaign_metrics"))],
    paging: PagingParams,
    campaign_id: Annotated[
        int | None, Query(description="Only this campaign", examples=[1])
    ] = None,
    start_date: Annotated[
        dt.date | None,
        Query(
            description="Only campaigns still running on or after this day", examples=["2026-03-01"]
        ),
    ] = None,
    end_date: Annotated[
        dt.date | None,
        Query(description="Only campaigns started on or before this day", examples=["2026-03-31"]),
    ] = None,
    channel: Annotated[
        Channel | None, Query(description="Only this channel", examples=["push"])
    ] = None,
) -> CampaignMetricsPage:
    """Metrics of the campaigns matching every given filter, by campaign id.

    The window keeps campaigns that ran at some point between `start_date` and `end_date`; a
    window without campaigns is an empty page. Errors: 400 `invalid_date_range`, 404
    `unknown_campaign` for a campaign id that does not exist (with the id range), 422
    `invalid_request` for bad paging, a malformed date or an unknown channel.
    """
    check_window(start_date, end_date, max_days=None)
    predicate = pl.lit(True)
    if campaign_id is not None:
        predicate &= pl.col("campaign_id") == campaign_id
    if start_date is not None:
        predicate &= pl.col("end_date") >= start_date
    if end_date is not None:
        predicate &= pl.col("start_date") <= end_date
    if channel is not None:
        predicate &= pl.col("channel") == channel.value
    lf = served.scan()
    campaigns = lf.filter(predicate).select(list(CampaignMetrics.model_fields))
    rows, total = paginate(campaigns, ["campaign_id"], paging)
    if total == 0 and campaign_id is not None:
        known = lf.filter(pl.col("campaign_id") == campaign_id).select(pl.len()).collect().item()
        if not known:
            low, high = bounds(lf, "campaign_id")
            raise ApiError(
                404,
                "unknown_campaign",
                f"campaign {campaign_id} does not exist; campaigns have ids {span(low, high)}",
                {"campaign_id": campaign_id, "min_campaign_id": low, "max_campaign_id": high},
            )
    items = [CampaignMetrics.model_validate(row) for row in rows.iter_rows(named=True)]
    return CampaignMetricsPage(**page_fields(items, total, paging))


@router.get(
    "/customer-segments",
    response_model=CustomerSegmentsPage,
    summary="Customer segments, paginated",
    responses=error_responses(401, 403, 422, 429, 503),
)
def get_customer_segments(
    served: Annotated[ServedProduct, Depends(product_access("marketing.customer_segments"))],
    paging: PagingParams,
    segment: Annotated[
        Segment | None, Query(description="Only customers in this segment", examples=["at_risk"])
    ] = None,
) -> CustomerSegmentsPage:
    """Each customer's current segment with recency, orders, spend and e-mail engagement.

    Customers are identified by id only: no names, e-mails or phones. Errors: 422
    `invalid_request` for bad paging or a segment that is not one of the five.
    """
    lf = served.scan()
    if segment is not None:
        lf = lf.filter(pl.col("segment") == segment.value)
    rows, total = paginate(lf.select(list(CustomerSegment.model_fields)), ["customer_id"], paging)
    items = [CustomerSegment.model_validate(row) for row in rows.iter_rows(named=True)]
    return CustomerSegmentsPage(**page_fields(items, total, paging))
