"""Producto pipeline (Polars).

curated: products, price_changes, reviews. gold: catalog (current price and ratings),
pricing_history (valid_from / valid_to intervals) and category_taxonomy.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from lakehouse.context import CHECK_PREFIX, DomainContext
from lakehouse.quality import Rule

TS = pl.Datetime("us", "UTC")
KNOWN = CHECK_PREFIX + "known"


def _flag_known_product(frame: pl.LazyFrame, products: pl.LazyFrame) -> pl.LazyFrame:
    ref = products.select("product_id").unique().with_columns(pl.lit(True).alias(KNOWN))
    return frame.join(ref, on="product_id", how="left").with_columns(pl.col(KNOWN).fill_null(False))


PRODUCT_RULES = [
    Rule("not_null:category", pl.col("category").is_not_null(), "category is missing"),
    Rule("positive:list_price_usd", pl.col("list_price_usd") > 0, "list price is not positive"),
]
PRICE_RULES = [
    Rule("not_null:price_usd", pl.col("price_usd").is_not_null(), "price is missing"),
    Rule("positive:price_usd", pl.col("price_usd") > 0, "price is not positive"),
    Rule("unknown_product", pl.col(KNOWN), "product id is not (yet) in the catalogue"),
]
REVIEW_RULES = [
    Rule("not_null:rating", pl.col("rating").is_not_null(), "rating is missing"),
    Rule("in_range:rating", pl.col("rating").is_between(1, 5), "rating is not between 1 and 5"),
    Rule("unknown_product", pl.col(KNOWN), "product id is not (yet) in the catalogue"),
]


def pricing_history(products: pl.LazyFrame, prices: pl.LazyFrame, at: datetime) -> pl.LazyFrame:
    """Price intervals per product: the launch list price, then every change; valid_to is the
    next interval's start (null while current)."""
    initial = products.select(
        "product_id",
        valid_from=pl.col("launch_date").cast(TS),
        price_usd=pl.col("list_price_usd"),
        change_reason=pl.lit("initial"),
    )
    changes = prices.select(
        "product_id", valid_from="effective_ts", price_usd="price_usd", change_reason="reason"
    )
    return (
        pl.concat([initial, changes])
        .sort("product_id", "valid_from")
        .unique(subset=["product_id", "valid_from"], keep="last", maintain_order=True)
        .with_columns(valid_to=pl.col("valid_from").shift(-1).over("product_id"))
        .with_columns(
            is_current=pl.col("valid_to").is_null(),
            calculated_at=pl.lit(at, dtype=TS),
        )
        .select(
            "product_id",
            "valid_from",
            "valid_to",
            "price_usd",
            "change_reason",
            "is_current",
            "calculated_at",
        )
    )


def catalog(
    products: pl.LazyFrame, history: pl.LazyFrame, reviews: pl.LazyFrame, at: datetime
) -> pl.LazyFrame:
    """Every product with its category, current price and review summary."""
    current = history.filter(pl.col("is_current")).select(
        "product_id",
        current_price_usd="price_usd",
        price_updated_at=pl.when(pl.col("change_reason") != "initial").then(pl.col("valid_from")),
    )
    rated = reviews.group_by("product_id").agg(
        avg_rating=pl.col("rating").cast(pl.Float64).mean().round(3),
        total_reviews=pl.len().cast(pl.Int64),
    )
    return (
        products.join(current, on="product_id", how="left")
        .join(rated, on="product_id", how="left")
        .with_columns(
            pl.col("total_reviews").fill_null(0),
            calculated_at=pl.lit(at, dtype=TS),
        )
        .select(
            "product_id",
            "name",
            "category",
            "subcategory",
            "brand",
            "launch_date",
            "current_price_usd",
            "price_updated_at",
            "avg_rating",
            "total_reviews",
            "calculated_at",
        )
        .sort("product_id")
    )


def category_taxonomy(catalog_rows: pl.LazyFrame, at: datetime) -> pl.LazyFrame:
    """Category tree with product counts and average current price."""
    return (
        catalog_rows.group_by("category", "subcategory")
        .agg(
            products_count=pl.len().cast(pl.Int64),
            avg_price_usd=pl.col("current_price_usd").mean().round(2),
        )
        .with_columns(calculated_at=pl.lit(at, dtype=TS))
        .sort("category", "subcategory")
    )


def run(ctx: DomainContext) -> None:
    """Bring producto's curated tables up to date, then refresh its three products."""
    ctx.curate("products", source="products", key=["product_id"], rules=PRODUCT_RULES)
    products = ctx.curated("products")
    for table, key, rules in (
        ("price_changes", "change_id", PRICE_RULES),
        ("reviews", "review_id", REVIEW_RULES),
    ):
        ctx.curate(
            table,
            source=table,
            key=[key],
            rules=rules,
            prepare=lambda raw: _flag_known_product(raw, products),
            retry_rules=["unknown_product"],
        )
    with ctx.step("gold.pricing_history"):
        _publish_history(ctx)
    with ctx.step("gold.catalog"):
        changed = _publish_catalog(ctx)
    if changed or ctx.full_refresh:
        with ctx.step("gold.category_taxonomy"):
            taxonomy = category_taxonomy(ctx.gold("catalog"), ctx.run_at).collect()
            ctx.publish_product("category_taxonomy", taxonomy)


def _ids(*frames: pl.LazyFrame) -> pl.Series:
    return pl.concat([f.select("product_id") for f in frames]).unique().collect().to_series()


def _publish_history(ctx: DomainContext) -> None:
    products, new_products, products_mark = ctx.changes("products", "pricing_history")
    prices, new_prices, prices_mark = ctx.changes("price_changes", "pricing_history")
    ids = _ids(new_products, new_prices).implode()
    history = pricing_history(
        products.filter(pl.col("product_id").is_in(ids)),
        prices.filter(pl.col("product_id").is_in(ids)),
        ctx.run_at,
    ).collect()
    marks = {"curated/products": products_mark, "curated/price_changes": prices_mark}
    ctx.publish_product("pricing_history", history, watermarks=marks)


def _publish_catalog(ctx: DomainContext) -> bool:
    products, new_products, products_mark = ctx.changes("products", "catalog")
    _, new_prices, prices_mark = ctx.changes("price_changes", "catalog")
    reviews, new_reviews, reviews_mark = ctx.changes("reviews", "catalog")
    ids = _ids(new_products, new_prices, new_reviews).implode()
    rows = catalog(
        products.filter(pl.col("product_id").is_in(ids)),
        ctx.gold("pricing_history").filter(pl.col("product_id").is_in(ids)),
        reviews.filter(pl.col("product_id").is_in(ids)),
        ctx.run_at,
    ).collect()
    marks = {
        "curated/products": products_mark,
        "curated/price_changes": prices_mark,
        "curated/reviews": reviews_mark,
    }
    return ctx.publish_product("catalog", rows, watermarks=marks) is not None
