"""Producto pipeline (Polars): curated products and prices; gold catalog."""

from __future__ import annotations

import polars as pl

from lakehouse.context import DomainContext


def curate_prices(raw: pl.LazyFrame, products: pl.LazyFrame) -> pl.LazyFrame:
    """Valid price changes of known products, one per change id."""
    return (
        raw.sort("ingested_at", "change_id")
        .unique(subset=["change_id"], keep="first", maintain_order=True)
        .filter(pl.col("price_usd").is_not_null() & (pl.col("price_usd") > 0))
        .join(products.select("product_id"), on="product_id", how="semi")
        .select("change_id", "product_id", "effective_ts", "price_usd", "reason", "ingested_at")
    )


def catalog(products: pl.LazyFrame, prices: pl.LazyFrame) -> pl.LazyFrame:
    """Every product with its category and its current price in USD."""
    latest = (
        prices.sort("effective_ts", "change_id")
        .group_by("product_id")
        .agg(pl.col("price_usd").last(), pl.col("effective_ts").last().alias("price_updated_at"))
    )
    return (
        products.join(latest, on="product_id", how="left")
        .with_columns(
            current_price_usd=pl.coalesce("price_usd", "list_price_usd"),
        )
        .select("product_id", "name", "category", "subcategory", "brand", "launch_date",
                "current_price_usd", "price_updated_at")
        .sort("product_id")
    )  # fmt: skip


def run(ctx: DomainContext) -> None:
    """Build producto's curated tables and its catalog product."""
    products = (
        ctx.raw("products").unique(subset=["product_id"], keep="first").sort("product_id").collect()
    )
    ctx.publish("curated", "products", products)
    prices = curate_prices(ctx.raw("price_changes"), products.lazy()).collect()
    ctx.publish("curated", "price_changes", prices)
    ctx.publish("gold", "catalog", catalog(products.lazy(), prices.lazy()).collect())
