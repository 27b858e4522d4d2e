"""Producto product features: daily point-in-time snapshots of price, age and reviews.

Built from producto's own curated tables with the pipeline's own functions (pricing_history and
catalog), fed only with what was known at T: products ingested by T and launched before it, price
changes with effective_ts < T and ingested_at <= T, reviews with review_ts < T and
ingested_at <= T. Daily, because prices and reviews move every day and the catalogue is small
next to the customer base.

Stock on hand is not here: warehouses are logistica's, and producto may not read logistica
(logistica depends on ventas, which depends on producto), so logistica publishes the product
stock view. The customer-level view of price changes is ventas' (see domains/ventas/features.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from domains.producto.pipeline import catalog, pricing_history
from lakehouse import snapshots as snap
from lakehouse.config import get_settings

DOMAIN = "producto"
TABLE = "product_features"
TS = snap.TS
PRICE_CHANGE_DAYS = 30
EVERY_DAYS = 1
SNAPSHOTS_PER_BATCH = 28

SCHEMA: dict[str, pl.DataType] = {
    "product_id": pl.Int64(),
    "event_timestamp": TS,
    "created_timestamp": TS,
    "category": pl.String(),
    "current_price": pl.Float64(),
    "price_change_30d": pl.Float64(),
    "days_since_launch": pl.Int64(),
    "avg_rating": pl.Float64(),
    "total_reviews": pl.Int64(),
}


def features_path() -> Path:
    """Delta location of the producto product feature table."""
    return get_settings().table_path(DOMAIN, "features", TABLE)


def _prices(products: pl.LazyFrame, changes: pl.LazyFrame, snapshot: datetime) -> pl.LazyFrame:
    """Each product's price in force just before `snapshot`, from the given changes."""
    history = pricing_history(
        products, changes.filter(pl.col("effective_ts") < snap.at(snapshot)), snapshot
    )
    return history.filter(pl.col("is_current")).select("product_id", "price_usd")


def product_features_at(
    products: pl.LazyFrame,
    changes: pl.LazyFrame,
    reviews: pl.LazyFrame,
    snapshot: datetime,
) -> pl.LazyFrame:
    """One snapshot: category, price, price change, age and reviews of every product known
    and launched by then (curated products, price_changes and reviews)."""
    launched = products.filter(
        (pl.col("ingested_at") <= snap.at(snapshot))
        & (pl.col("launch_date").cast(TS) < snap.at(snapshot))
    )
    seen_changes = changes.filter(snap.visible("effective_ts", snapshot))
    seen_reviews = reviews.filter(snap.visible("review_ts", snapshot))
    before = snapshot - timedelta(days=PRICE_CHANGE_DAYS)
    then = _prices(launched.filter(pl.col("launch_date").cast(TS) < snap.at(before)),
                   seen_changes, before)  # fmt: skip
    rows = catalog(
        launched, pricing_history(launched, seen_changes, snapshot), seen_reviews, snapshot
    )
    return (
        rows.join(then, on="product_id", how="left")
        .select(
            "product_id",
            **snap.stamped(snapshot),
            category="category",
            current_price="current_price_usd",
            price_change_30d=pl.col("current_price_usd") / pl.col("price_usd") - 1.0,
            days_since_launch=(snap.at(snapshot) - pl.col("launch_date").cast(TS)).dt.total_days(),
            avg_rating="avg_rating",
            total_reviews="total_reviews",
        )
        .cast(SCHEMA)  # type: ignore[arg-type]
    )


def build(every_days: int = EVERY_DAYS) -> int:
    """The producto feature job (`mesh features build`): daily product snapshots; rows written."""
    ctx = snap.context(DOMAIN)
    with ctx.step(f"features.{TABLE}") as run:
        products = ctx.curated("products").collect().lazy()
        changes = ctx.curated("price_changes").select(
            "change_id", "product_id", "effective_ts", "price_usd", "reason", "ingested_at"
        )
        reviews = ctx.curated("reviews").select("product_id", "rating", "review_ts", "ingested_at")
        changes = changes.sort("effective_ts", "change_id").collect().lazy()

        def compute(batch: list[datetime]) -> pl.LazyFrame:
            # reviews count over the whole history, so they are read up to the batch's end
            known = reviews.filter(pl.col("ingested_at") <= snap.at(batch[-1])).collect().lazy()
            return pl.concat([product_features_at(products, changes, known, s) for s in batch])

        times = snap.snapshot_times([(changes, "effective_ts"), (reviews, "review_ts")], every_days)
        return snap.write(
            run,
            DOMAIN,
            TABLE,
            times,
            SNAPSHOTS_PER_BATCH,
            compute,
            SCHEMA,
            "product_id",
            every_days,
        )
