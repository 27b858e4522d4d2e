"""Ventas customer features: periodic point-in-time snapshots of each customer's purchases.

A snapshot at time T sees an order only if it had happened (order_ts < T) and had reached the
lakehouse (ingested_at <= T), so a late-arriving order never leaks into an earlier snapshot and
training sets built from these rows reproduce what a model would have known at T.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from lakehouse import storage
from lakehouse.config import get_settings

DOMAIN = "ventas"
TABLE = "customer_features"
TS = pl.Datetime("us", "UTC")

# The synthetic world averages ~60 USD per order and ~3 orders a month, about 2,200 USD a year;
# premium marks customers clearly above that average over the last 365 days.
PREMIUM_SPEND_USD_365D = 2500.0
PAYMENT_LOOKBACK_DAYS = 90
# Snapshot grid anchored on a Monday, so weekly snapshots fall on Mondays and keep the same times
# when the history grows (a rerun over more data only adds snapshots).
SNAPSHOT_ANCHOR = datetime(1970, 1, 5, tzinfo=UTC)
# Snapshots computed together: Polars runs them in parallel, and each one holds a filtered copy
# of the orders, so the batch bounds peak memory (8: same speed as all at once, ~30% less memory
# at 100k customers x 53 snapshots).
SNAPSHOTS_PER_BATCH = 8

SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Int64(),
    "event_timestamp": TS,
    "created_timestamp": TS,
    "total_purchases_7d": pl.Float64(),
    "total_purchases_30d": pl.Float64(),
    "transaction_count_7d": pl.Int64(),
    "avg_basket_size_30d": pl.Float64(),
    "days_since_last_purchase": pl.Int64(),
    "preferred_payment_method": pl.String(),
    "is_premium_customer": pl.Int64(),
}
FEATURES: tuple[str, ...] = tuple(SCHEMA)[3:]


def features_path() -> Path:
    """Delta location of the ventas customer feature table."""
    return get_settings().table_path(DOMAIN, "features", TABLE)


def _at(ts: datetime) -> pl.Expr:
    return pl.lit(ts, dtype=TS)


def known_orders(orders: pl.LazyFrame, snapshot: datetime) -> pl.LazyFrame:
    """Completed orders a snapshot taken at `snapshot` can see: already placed and ingested."""
    return orders.filter(
        (pl.col("order_ts") < _at(snapshot))
        & (pl.col("ingested_at") <= _at(snapshot))
        & (pl.col("status") == "completed")
    )


def purchase_aggregates(
    known: pl.LazyFrame, snapshot: datetime, premium_spend_usd: float = PREMIUM_SPEND_USD_365D
) -> pl.LazyFrame:
    """Spend, order counts, basket size, recency and premium flag per customer."""

    def within(days: int) -> pl.Expr:
        return pl.col("order_ts") >= _at(snapshot - timedelta(days=days))

    return known.group_by("customer_id").agg(
        total_purchases_7d=pl.col("amount_usd").filter(within(7)).sum(),
        total_purchases_30d=pl.col("amount_usd").filter(within(30)).sum(),
        transaction_count_7d=within(7).sum().cast(pl.Int64),
        avg_basket_size_30d=pl.col("basket_size").filter(within(30)).mean(),
        days_since_last_purchase=(_at(snapshot) - pl.col("order_ts").max()).dt.total_days(),
        is_premium_customer=(pl.col("amount_usd").filter(within(365)).sum() > premium_spend_usd),
    )


def preferred_payment_method(
    known: pl.LazyFrame, snapshot: datetime, lookback_days: int = PAYMENT_LOOKBACK_DAYS
) -> pl.LazyFrame:
    """Most used payment method per customer over the lookback (ties: most recent, then name)."""
    since = _at(snapshot - timedelta(days=lookback_days))
    return (
        known.filter(pl.col("order_ts") >= since)
        .group_by("customer_id", "payment_method")
        .agg(n=pl.len(), last_used=pl.col("order_ts").max())
        .group_by("customer_id")
        .agg(
            preferred_payment_method=pl.col("payment_method")
            .sort_by(["n", "last_used", "payment_method"], descending=[True, True, False])
            .first()
        )
    )


def customer_features_at(
    orders: pl.LazyFrame, customers: pl.LazyFrame, snapshot: datetime
) -> pl.LazyFrame:
    """One snapshot: a feature row for every customer signed up by `snapshot`."""
    known = known_orders(orders, snapshot)
    return (
        customers.filter(pl.col("signup_ts") <= _at(snapshot))
        .select("customer_id")
        .join(purchase_aggregates(known, snapshot), on="customer_id", how="left")
        .join(preferred_payment_method(known, snapshot), on="customer_id", how="left")
        .select(
            pl.col("customer_id").cast(pl.Int64),
            event_timestamp=_at(snapshot),
            # The row is what the platform knew at the snapshot, so it counts as created then;
            # this keeps backfills deterministic and Feast's created-timestamp filter honest.
            created_timestamp=_at(snapshot),
            total_purchases_7d=pl.col("total_purchases_7d").fill_null(0.0),
            total_purchases_30d=pl.col("total_purchases_30d").fill_null(0.0),
            transaction_count_7d=pl.col("transaction_count_7d").fill_null(0),
            avg_basket_size_30d=pl.col("avg_basket_size_30d"),
            days_since_last_purchase=pl.col("days_since_last_purchase"),
            preferred_payment_method=pl.col("preferred_payment_method"),
            is_premium_customer=pl.col("is_premium_customer").fill_null(False),
        )
        .cast(SCHEMA)  # type: ignore[arg-type]
    )


def snapshot_times(orders: pl.LazyFrame, every_days: int = 7) -> list[datetime]:
    """Grid midnights (UTC) from the first one after the first order to the first one at or
    after the last ingestion, so the last snapshot sees every order."""
    if every_days < 1:
        raise ValueError(f"snapshot_every_days must be a positive number of days, got {every_days}")
    bounds = orders.select(
        first=pl.col("order_ts").min(),
        last=pl.max_horizontal(pl.col("order_ts").max(), pl.col("ingested_at").max()),
    ).collect()
    first, last = bounds.row(0)
    if first is None:
        return []
    step = timedelta(days=every_days)
    k_first = (first - SNAPSHOT_ANCHOR) // step + 1
    k_last = -((SNAPSHOT_ANCHOR - last) // step)  # ceiling division
    return [SNAPSHOT_ANCHOR + k * step for k in range(k_first, max(k_first, k_last) + 1)]


def customer_features(
    orders: pl.LazyFrame, customers: pl.LazyFrame, snapshots: list[datetime]
) -> pl.LazyFrame:
    """All snapshots stacked, sorted by snapshot time then customer."""
    if not snapshots:
        return pl.LazyFrame(schema=SCHEMA)
    frames = [customer_features_at(orders, customers, s) for s in snapshots]
    return pl.concat(frames).sort("event_timestamp", "customer_id")


def build_customer_features(snapshot_every_days: int = 7) -> int:
    """Rebuild the ventas customer feature table from curated orders; returns rows written."""
    settings = get_settings()
    orders = storage.scan(settings.table_path(DOMAIN, "curated", "orders"))
    customers = storage.scan(settings.table_path(DOMAIN, "curated", "customers"))
    snapshots = snapshot_times(orders, snapshot_every_days)
    if not snapshots:
        raise ValueError(
            "ventas curated orders is empty, so there is nothing to snapshot; "
            "run the ventas pipeline (`mesh build`) first"
        )
    batches = [
        customer_features(orders, customers, snapshots[i : i + SNAPSHOTS_PER_BATCH]).collect()
        for i in range(0, len(snapshots), SNAPSHOTS_PER_BATCH)
    ]
    df = pl.concat(batches)
    storage.write(
        df,
        features_path(),
        mode="overwrite",
        metadata={
            "job": "ventas.features",
            "snapshots": len(snapshots),
            "snapshot_every_days": snapshot_every_days,
            "first_snapshot": snapshots[0].isoformat(),
            "last_snapshot": snapshots[-1].isoformat(),
        },
    )
    return df.height


def build() -> int:
    """The ventas feature job run by `mesh features build`: weekly customer snapshots."""
    return build_customer_features()
