"""Logistica data product API v1: shipment tracking by order and daily delivery performance."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import polars as pl
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from lakehouse.api import ApiError, ServedProduct, error_responses, product_access
from lakehouse.routes import (
    ALL_REGIONS,
    ProductRoute,
    RegionFilter,
    bounds,
    check_window,
    example_of,
    span,
)

API_VERSION = "1.0.0"  # semver of domains/logistica/contracts/openapi.yaml; major = path prefix
router = APIRouter(prefix="/logistica/v1", tags=["logistica"], route_class=ProductRoute)

CALCULATED_AT = Field(
    description="When the gold job computed this row (UTC)", examples=["2026-06-30T02:30:00Z"]
)


class Shipment(BaseModel):
    """Current status of one shipment of an order."""

    shipment_id: int = Field(description="Shipment identifier", examples=[7781])
    region: str = Field(description="Marketplace region of delivery", examples=["NA"])
    warehouse_id: int = Field(description="Warehouse the shipment left from", examples=[3])
    carrier: str = Field(description="Carrier handling the shipment", examples=["FastShip"])
    status: str = Field(
        description="Latest status: shipped, delivered or returned", examples=["delivered"]
    )
    promised_ts: dt.datetime = Field(
        description="Delivery time promised to the customer (UTC)",
        examples=["2026-06-05T18:00:00Z"],
    )
    shipped_ts: dt.datetime = Field(
        description="When it left the warehouse (UTC)", examples=["2026-06-02T09:12:00Z"]
    )
    delivered_ts: dt.datetime | None = Field(
        description="When it was delivered (UTC); null until delivered",
        examples=["2026-06-04T16:40:00Z"],
    )
    is_late: bool | None = Field(
        description="Delivered after promised_ts; null until delivered", examples=[False]
    )
    delivery_days: float | None = Field(
        description="Days from shipped_ts to delivered_ts; null until delivered", examples=[2.3]
    )
    return_reason: str | None = Field(
        description="Why the customer returned it; null unless returned", examples=[None]
    )
    updated_at: dt.datetime = Field(
        description="When the status last changed (UTC)", examples=["2026-06-04T16:40:00Z"]
    )
    calculated_at: dt.datetime = CALCULATED_AT


class ShipmentTrackingResponse(BaseModel):
    """Every shipment of one order, sorted by shipment id."""

    order_id: int = Field(description="The requested order", examples=[98231])
    items: list[Shipment] = Field(
        description="The order's shipments (usually one)", examples=[[example_of(Shipment)]]
    )


class DeliveryDay(BaseModel):
    """On-time delivery of one region on one day."""

    date: dt.date = Field(description="Calendar day (UTC) of delivery", examples=["2026-06-01"])
    region: str = Field(description="Marketplace region", examples=["NA"])
    shipments_delivered: int = Field(description="Shipments delivered that day", examples=[412])
    on_time_rate: float = Field(
        description="Share delivered by the promised time, 0..1", examples=[0.93]
    )
    avg_delivery_days: float = Field(
        description="Mean days from shipping to delivery", examples=[2.4]
    )
    late_count: int = Field(description="Shipments delivered after the promise", examples=[29])
    returns_count: int = Field(description="Shipments returned that day", examples=[11])
    calculated_at: dt.datetime = CALCULATED_AT


class DeliveryPerformanceResponse(BaseModel):
    """Delivery performance over a date window, sorted by date then region."""

    region: str = Field(description="The requested region, or ALL", examples=["ALL"])
    start_date: dt.date = Field(description="First day of the window", examples=["2026-06-01"])
    end_date: dt.date = Field(description="Last day of the window", examples=["2026-06-07"])
    items: list[DeliveryDay] = Field(
        description="One row per day and region with deliveries",
        examples=[[example_of(DeliveryDay)]],
    )


@router.get(
    "/shipments/{order_id}",
    response_model=ShipmentTrackingResponse,
    summary="Shipment tracking of an order",
    responses=error_responses(401, 403, 404, 422, 429, 503),
)
def get_shipments(
    served: Annotated[ServedProduct, Depends(product_access("logistica.shipment_tracking"))],
    order_id: Annotated[
        int, Path(description="The order shipped (ventas order id)", examples=[98231])
    ],
) -> ShipmentTrackingResponse:
    """Current status of every shipment of `order_id`: carrier, promise, delivery, return.

    Errors: 404 `unknown_order` when no shipment carries that order id (with the order id range),
    422 `invalid_request` for a non-integer id.
    """
    lf = served.scan()
    rows = (
        lf.filter(pl.col("order_id") == order_id)
        .select(list(Shipment.model_fields))
        .sort("shipment_id")
        .collect()
    )
    if rows.is_empty():
        low, high = bounds(lf, "order_id")
        raise ApiError(
            404,
            "unknown_order",
            f"no shipment for order {order_id}; shipped orders have ids {span(low, high)} "
            "(an order appears once it has left the warehouse)",
            {"order_id": order_id, "min_order_id": low, "max_order_id": high},
        )
    items = [Shipment.model_validate(row) for row in rows.iter_rows(named=True)]
    return ShipmentTrackingResponse(order_id=order_id, items=items)


@router.get(
    "/delivery-performance",
    response_model=DeliveryPerformanceResponse,
    summary="Delivery performance by date and region",
    responses=error_responses(400, 401, 403, 404, 422, 429, 503),
)
def get_delivery_performance(
    served: Annotated[ServedProduct, Depends(product_access("logistica.delivery_performance"))],
    start_date: Annotated[
        dt.date, Query(description="First day, YYYY-MM-DD", examples=["2026-06-01"])
    ],
    region: RegionFilter,
    end_date: Annotated[
        dt.date | None,
        Query(description="Last day, included; defaults to start_date", examples=["2026-06-07"]),
    ] = None,
) -> DeliveryPerformanceResponse:
    """On-time rate, delivery days, late and returned shipments per day and region.

    One day with `start_date` alone, a window of at most 366 days with `end_date`. Errors: 400
    `invalid_date_range`, `date_range_too_long` or `unknown_region`, 404 `no_data` when the
    window has no deliveries (with the available date range), 422 for a malformed date.
    """
    end_date = end_date or start_date
    check_window(start_date, end_date)
    lf = served.scan()
    predicate = pl.col("date").is_between(start_date, end_date)
    if region is not None:
        predicate &= pl.col("region") == region
    rows = (
        lf.filter(predicate).select(list(DeliveryDay.model_fields)).sort("date", "region").collect()
    )
    if rows.is_empty():
        first, last = bounds(lf, "date")
        where = f" in region {region}" if region else ""
        raise ApiError(
            404,
            "no_data",
            f"no delivery performance from {start_date} to {end_date}{where}; data is available "
            f"{span(first, last)}",
            {
                "start_date": start_date,
                "end_date": end_date,
                "region": region,
                "available_from": first,
                "available_to": last,
            },
        )
    items = [DeliveryDay.model_validate(row) for row in rows.iter_rows(named=True)]
    return DeliveryPerformanceResponse(
        region=region or ALL_REGIONS, start_date=start_date, end_date=end_date, items=items
    )
