"""Logistica features: delivery experience per customer, and stock on hand per product.

Customer snapshots (weekly) count deliveries, not dispatches: curated shipments keep only each
shipment's latest status, whose `ingested_at` is when the delivery reached the lakehouse, so the
time a dispatch became known is not recorded and a shipment in transit at T cannot be shown to
have been known at T. Delivered shipments are counted once delivered_ts < T and ingested_at <= T.
Every customer with an order known by T (ventas.customer_transaction_history, declared) gets a
row, with zero counts before their first delivery.

Product snapshots (daily) hold stock on hand. Stock is logistica's (it runs the warehouses), so
the product view of stock lives here: producto cannot read logistica, because logistica depends
on ventas, which depends on producto, and the dependency graph must stay acyclic.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl

from domains.logistica.pipeline import LOW_STOCK_UNITS
from lakehouse import snapshots as snap
from lakehouse.config import get_settings

DOMAIN = "logistica"
CUSTOMER_TABLE = "customer_features"
PRODUCT_TABLE = "product_features"
HISTORY = "ventas.customer_transaction_history"
TS = snap.TS
WINDOW_DAYS = 30
# Delivery time and punctuality are service levels: a customer gets a few deliveries a month, so
# they are averaged over 90 days; the counts that track recent experience use 30.
SERVICE_DAYS = 90
# Stock counts older than this are not "on hand" any more (snapshots arrive weekly).
STOCK_MAX_AGE_DAYS = 14
CUSTOMER_EVERY_DAYS = 7
PRODUCT_EVERY_DAYS = 1
SNAPSHOTS_PER_BATCH = 8
PRODUCT_SNAPSHOTS_PER_BATCH = 28

CUSTOMER_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Int64(),
    "event_timestamp": TS,
    "created_timestamp": TS,
    "avg_delivery_time_days": pl.Float64(),
    "on_time_delivery_rate": pl.Float64(),
    "total_shipments_30d": pl.Int64(),
    "late_deliveries_30d": pl.Int64(),
    "returns_30d": pl.Int64(),
    "return_rate_30d": pl.Float64(),
}
PRODUCT_SCHEMA: dict[str, pl.DataType] = {
    "product_id": pl.Int64(),
    "event_timestamp": TS,
    "created_timestamp": TS,
    "stock_level": pl.Int64(),
    "low_stock_warehouses": pl.Int64(),
    "stock_age_days": pl.Int64(),
}
NO_RETURNS = {"shipment_id": pl.Int64, "customer_id": pl.Int64, "return_ts": TS,
              "ingested_at": TS}  # fmt: skip


def customer_features_path() -> Path:
    """Delta location of the logistica customer feature table."""
    return get_settings().table_path(DOMAIN, "features", CUSTOMER_TABLE)


def product_features_path() -> Path:
    """Delta location of the logistica product (stock) feature table."""
    return get_settings().table_path(DOMAIN, "features", PRODUCT_TABLE)


def deliveries(shipments: pl.LazyFrame) -> pl.LazyFrame:
    """Delivered shipments with their delivery time in seconds and whether they were late."""
    return shipments.filter(
        (pl.col("status") == "delivered") & pl.col("delivered_ts").is_not_null()
    ).select(
        "shipment_id",
        "customer_id",
        "delivered_ts",
        "ingested_at",
        delivery_seconds=(pl.col("delivered_ts") - pl.col("shipped_ts")).dt.total_seconds(),
        late=pl.col("delivered_ts") > pl.col("promised_ts"),
    )


def customer_features_at(
    delivered: pl.LazyFrame,
    returns: pl.LazyFrame,
    customers: pl.LazyFrame,
    snapshot: datetime,
) -> pl.LazyFrame:
    """One snapshot: delivery time, punctuality and returns of every customer known by then
    (`delivered` from deliveries(); `customers`: customer_id, first_seen)."""
    known = delivered.filter(snap.visible("delivered_ts", snapshot))
    service = (
        known.filter(snap.since("delivered_ts", snapshot, SERVICE_DAYS))
        .group_by("customer_id")
        .agg(
            # whole seconds add up exactly in any order, so reruns are byte-identical
            avg_delivery_time_days=pl.col("delivery_seconds").mean() / 86400,
            on_time_delivery_rate=(~pl.col("late")).mean(),
        )
    )
    returned = (
        returns.filter(snap.visible("return_ts", snapshot))
        .select("shipment_id", returned=pl.lit(True))
        .unique("shipment_id")
    )
    recent = (
        known.filter(snap.since("delivered_ts", snapshot, WINDOW_DAYS))
        .join(returned, on="shipment_id", how="left")
        .group_by("customer_id")
        .agg(
            total_shipments_30d=pl.len(),
            late_deliveries_30d=pl.col("late").sum(),
            returned_30d=pl.col("returned").fill_null(False).sum(),
        )
    )
    returns_30d = (
        returns.filter(
            snap.visible("return_ts", snapshot) & snap.since("return_ts", snapshot, WINDOW_DAYS)
        )
        .group_by("customer_id")
        .agg(returns_30d=pl.len())
    )
    shipped = pl.col("total_shipments_30d").fill_null(0)
    return (
        snap.present(customers, "customer_id", snapshot)
        .join(service, on="customer_id", how="left")
        .join(recent, on="customer_id", how="left")
        .join(returns_30d, on="customer_id", how="left")
        .select(
            "customer_id",
            **snap.stamped(snapshot),
            avg_delivery_time_days="avg_delivery_time_days",
            on_time_delivery_rate="on_time_delivery_rate",
            total_shipments_30d=shipped,
            late_deliveries_30d=pl.col("late_deliveries_30d").fill_null(0),
            returns_30d=pl.col("returns_30d").fill_null(0),
            return_rate_30d=pl.when(shipped > 0).then(pl.col("returned_30d") / shipped),
        )
        .cast(CUSTOMER_SCHEMA)  # type: ignore[arg-type]
    )


def stock_at(
    stock: pl.LazyFrame, snapshot: datetime, max_age_days: int = STOCK_MAX_AGE_DAYS
) -> pl.LazyFrame:
    """One snapshot: per product, units on hand summed over warehouses at each warehouse's
    latest stock count known by then (counts older than max_age_days are ignored)."""
    known = stock.with_columns(counted_at=pl.col("snapshot_date").cast(TS)).filter(
        snap.visible("counted_at", snapshot) & snap.since("counted_at", snapshot, max_age_days)
    )
    latest = known.group_by("warehouse_id", "product_id").agg(
        units=pl.col("units_on_hand").sort_by("counted_at").last(),
        counted_at=pl.col("counted_at").max(),
    )
    return (
        latest.group_by("product_id")
        .agg(
            stock_level=pl.col("units").sum(),
            low_stock_warehouses=(pl.col("units") < LOW_STOCK_UNITS).sum(),
            oldest=pl.col("counted_at").min(),
        )
        .select(
            "product_id",
            **snap.stamped(snapshot),
            stock_level="stock_level",
            low_stock_warehouses="low_stock_warehouses",
            stock_age_days=(snap.at(snapshot) - pl.col("oldest")).dt.total_days(),
        )
        .cast(PRODUCT_SCHEMA)  # type: ignore[arg-type]
    )


def build_customer_features(every_days: int = CUSTOMER_EVERY_DAYS) -> int:
    """Rebuild the logistica customer feature table; returns rows written."""
    ctx = snap.context(DOMAIN)
    with ctx.step(f"features.{CUSTOMER_TABLE}") as run:
        shipments = ctx.curated("shipments")
        returns = snap.optional(ctx, "curated", "returns", NO_RETURNS).select(
            "shipment_id", "customer_id", "return_ts", "ingested_at"
        )
        orders = ctx.product(HISTORY).select("customer_id", "order_ts", "ingested_at")
        customers = snap.first_seen(orders, "customer_id", "order_ts").collect(engine="streaming")
        customers = customers.lazy()
        delivered = deliveries(shipments)

        def compute(batch: list[datetime]) -> pl.LazyFrame:
            recent = snap.span(delivered, "delivered_ts", batch, SERVICE_DAYS)
            back = snap.span(returns, "return_ts", batch, WINDOW_DAYS)
            return pl.concat([customer_features_at(recent, back, customers, s) for s in batch])

        times = snap.snapshot_times([(shipments, "shipped_ts"), (returns, "return_ts")], every_days)
        return snap.write(
            run,
            DOMAIN,
            CUSTOMER_TABLE,
            times,
            SNAPSHOTS_PER_BATCH,
            compute,
            CUSTOMER_SCHEMA,
            "customer_id",
            every_days,
        )


def build_product_features(every_days: int = PRODUCT_EVERY_DAYS) -> int:
    """Rebuild the logistica product (stock) feature table; returns rows written."""
    ctx = snap.context(DOMAIN)
    with ctx.step(f"features.{PRODUCT_TABLE}") as run:
        stock = (
            ctx.curated("stock_levels")
            .select("snapshot_date", "warehouse_id", "product_id", "units_on_hand", "ingested_at")
            .with_columns(counted_at=pl.col("snapshot_date").cast(TS))
        )

        def compute(batch: list[datetime]) -> pl.LazyFrame:
            recent = snap.span(stock, "counted_at", batch, STOCK_MAX_AGE_DAYS)
            return pl.concat([stock_at(recent, s) for s in batch])

        times = snap.snapshot_times([(stock, "counted_at")], every_days)
        return snap.write(
            run,
            DOMAIN,
            PRODUCT_TABLE,
            times,
            PRODUCT_SNAPSHOTS_PER_BATCH,
            compute,
            PRODUCT_SCHEMA,
            "product_id",
            every_days,
        )


def build() -> int:
    """The logistica feature jobs (`mesh features build`): weekly customers, daily stock."""
    return build_customer_features() + build_product_features()
