"""Producto data product API v1: the product catalogue and each product's list price history."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import polars as pl
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from lakehouse.api import ApiError, ServedProduct, error_responses, product_access
from lakehouse.routes import (
    Page,
    PagingParams,
    ProductRoute,
    bounds,
    example_of,
    page_fields,
    paginate,
    span,
)

API_VERSION = "1.0.0"  # semver of domains/producto/contracts/openapi.yaml; major = path prefix
router = APIRouter(prefix="/producto/v1", tags=["producto"], route_class=ProductRoute)

CALCULATED_AT = Field(
    description="When the gold job computed this row (UTC)", examples=["2026-06-30T02:30:00Z"]
)


class CatalogProduct(BaseModel):
    """One product of the catalogue with its current list price and review summary."""

    product_id: int = Field(description="Product identifier, shared across domains", examples=[301])
    name: str = Field(
        description="Product name as shown to customers", examples=["Kiri beauty 301"]
    )
    category: str = Field(description="Top-level category", examples=["beauty"])
    subcategory: str = Field(description="Subcategory within the category", examples=["makeup"])
    brand: str = Field(description="Brand name", examples=["Kiri"])
    launch_date: dt.date = Field(
        description="Day the product went on sale", examples=["2024-03-18"]
    )
    current_price_usd: float = Field(description="Current list price in USD", examples=[24.99])
    price_updated_at: dt.datetime | None = Field(
        description="When the list price last changed (UTC); null when it never changed",
        examples=["2026-06-09T00:17:27Z"],
    )
    avg_rating: float | None = Field(
        description="Average review rating, 1 to 5; null without reviews", examples=[3.762]
    )
    total_reviews: int = Field(description="Number of reviews", examples=[21])
    calculated_at: dt.datetime = CALCULATED_AT


class CatalogPage(Page[CatalogProduct]):
    """A page of the catalogue, by product id."""


class PricePeriod(BaseModel):
    """One list price of a product and the time it was in force."""

    valid_from: dt.datetime = Field(
        description="When this price took effect (UTC)", examples=["2026-01-10T00:38:53Z"]
    )
    valid_to: dt.datetime | None = Field(
        description="When the next price took effect (UTC); null for the current price",
        examples=["2026-01-18T00:36:51Z"],
    )
    price_usd: float = Field(description="List price in USD", examples=[193.6])
    change_reason: str = Field(
        description="initial, adjustment or category_repricing", examples=["category_repricing"]
    )
    is_current: bool = Field(description="True for the price in force now", examples=[False])
    calculated_at: dt.datetime = CALCULATED_AT


class PriceHistoryResponse(BaseModel):
    """Every list price one product has had, oldest first."""

    product_id: int = Field(description="The requested product", examples=[1])
    items: list[PricePeriod] = Field(
        description="Price periods sorted by valid_from", examples=[[example_of(PricePeriod)]]
    )


def _unknown_filter(lf: pl.LazyFrame, filters: dict[str, str]) -> ApiError | None:
    """A 404 naming the first filter value the catalogue does not hold at all, if any."""
    for column, value in filters.items():
        known = lf.select(pl.col(column).unique().sort()).collect().to_series().to_list()
        if value not in known:
            shown = ", ".join(known[:50]) + (" ..." if len(known) > 50 else "")
            return ApiError(
                404,
                f"unknown_{column}",
                f"no product has {column} {value!r}; {column} values are: {shown}",
                {column: value, f"valid_{column}_values": known},
            )
    return None


@router.get(
    "/products",
    response_model=CatalogPage,
    summary="Product catalogue, filtered and paginated",
    responses=error_responses(400, 401, 403, 404, 422, 429, 503),
)
def get_products(
    served: Annotated[ServedProduct, Depends(product_access("producto.catalog"))],
    paging: PagingParams,
    category: Annotated[
        str | None, Query(description="Only this top-level category", examples=["beauty"])
    ] = None,
    subcategory: Annotated[
        str | None, Query(description="Only this subcategory", examples=["makeup"])
    ] = None,
    brand: Annotated[str | None, Query(description="Only this brand", examples=["Kiri"])] = None,
    min_price_usd: Annotated[
        float | None, Query(ge=0, description="Lowest current price, USD", examples=[10.0])
    ] = None,
    max_price_usd: Annotated[
        float | None, Query(ge=0, description="Highest current price, USD", examples=[50.0])
    ] = None,
) -> CatalogPage:
    """Products matching every given filter, by product id, one page at a time.

    A combination of known values that matches nothing is an empty page. Errors: 400
    `invalid_price_range` when min_price_usd exceeds max_price_usd, 404 `unknown_category`,
    `unknown_subcategory` or `unknown_brand` for a value no product has (with the valid values),
    422 `invalid_request` for bad paging or a negative price.
    """
    if min_price_usd is not None and max_price_usd is not None and min_price_usd > max_price_usd:
        raise ApiError(
            400,
            "invalid_price_range",
            f"min_price_usd {min_price_usd} is above max_price_usd {max_price_usd}; swap them",
            {"min_price_usd": min_price_usd, "max_price_usd": max_price_usd},
        )
    given = (("category", category), ("subcategory", subcategory), ("brand", brand))
    filters = {column: value for column, value in given if value is not None}
    predicate = pl.lit(True)
    for column, value in filters.items():
        predicate &= pl.col(column) == value
    if min_price_usd is not None:
        predicate &= pl.col("current_price_usd") >= min_price_usd
    if max_price_usd is not None:
        predicate &= pl.col("current_price_usd") <= max_price_usd
    lf = served.scan()
    products = lf.filter(predicate).select(list(CatalogProduct.model_fields))
    rows, total = paginate(products, ["product_id"], paging)
    if total == 0 and (error := _unknown_filter(lf, filters)) is not None:
        raise error
    items = [CatalogProduct.model_validate(row) for row in rows.iter_rows(named=True)]
    return CatalogPage(**page_fields(items, total, paging))


@router.get(
    "/products/{product_id}/prices",
    response_model=PriceHistoryResponse,
    summary="List price history of a product",
    responses=error_responses(401, 403, 404, 422, 429, 503),
)
def get_product_prices(
    served: Annotated[ServedProduct, Depends(product_access("producto.pricing_history"))],
    product_id: Annotated[int, Path(description="The product", examples=[1])],
) -> PriceHistoryResponse:
    """Every list price of `product_id` from its launch on, oldest first; the last is current.

    Errors: 404 `unknown_product` when the product has no price history (with the product id
    range), 422 `invalid_request` for a non-integer id.
    """
    lf = served.scan()
    rows = (
        lf.filter(pl.col("product_id") == product_id)
        .select(list(PricePeriod.model_fields))
        .sort("valid_from")
        .collect()
    )
    if rows.is_empty():
        low, high = bounds(lf, "product_id")
        raise ApiError(
            404,
            "unknown_product",
            f"product {product_id} has no price history; products have ids {span(low, high)}",
            {"product_id": product_id, "min_product_id": low, "max_product_id": high},
        )
    items = [PricePeriod.model_validate(row) for row in rows.iter_rows(named=True)]
    return PriceHistoryResponse(product_id=product_id, items=items)
