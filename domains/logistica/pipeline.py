"""Logistica pipeline (DuckDB SQL).

curated: shipments (latest status per shipment), returns, stock_levels. gold: shipment_tracking,
warehouse_inventory and delivery_performance, recomputed for the shipments and days that new
curated rows touch. Orders are checked against ventas' published transaction history.
"""

from __future__ import annotations

import polars as pl

from lakehouse.context import CHECK_PREFIX, DomainContext
from lakehouse.quality import Rule
from lakehouse.reference import REGIONS

KNOWN = CHECK_PREFIX + "known"
LOW_STOCK_UNITS = 25

FLAG_ORDERS = """
SELECT b.*, coalesce(k.known, false) AS {known},
       b.region AS region_raw, upper(trim(b.region)) AS region_clean
FROM batch AS b
LEFT JOIN (SELECT DISTINCT order_id, true AS known FROM ref) AS k USING (order_id)
"""

LATEST_STATUS = """
SELECT * EXCLUDE (region_raw) FROM good
-- a shipment reports 'shipped' then 'delivered'; within a batch the latest event wins
QUALIFY row_number() OVER (
    PARTITION BY shipment_id
    ORDER BY (status = 'delivered') DESC, event_ts DESC, ingested_at
) = 1
"""

SHIPMENT_TRACKING = """
SELECT s.shipment_id, s.order_id, s.customer_id, s.region, s.warehouse_id, s.carrier,
       CASE WHEN r.shipment_id IS NOT NULL THEN 'returned' ELSE s.status END AS status,
       s.promised_ts, s.shipped_ts, s.delivered_ts,
       CASE WHEN s.delivered_ts IS NULL THEN NULL
            ELSE s.delivered_ts > s.promised_ts END AS is_late,
       round(epoch(s.delivered_ts - s.shipped_ts) / 86400.0, 3) AS delivery_days,
       r.reason AS return_reason,
       greatest(s.event_ts, coalesce(r.return_ts, s.event_ts)) AS updated_at,
       CAST($run_at AS TIMESTAMPTZ) AS calculated_at
FROM shipments AS s
LEFT JOIN (
    SELECT * FROM returns
    QUALIFY row_number() OVER (PARTITION BY shipment_id ORDER BY return_ts) = 1
) AS r USING (shipment_id)
ORDER BY s.shipment_id
"""

DELIVERY_PERFORMANCE = """
WITH delivered AS (
    SELECT CAST(delivered_ts AS DATE) AS date, region,
           count(*) AS shipments_delivered,
           round(avg(CASE WHEN delivered_ts <= promised_ts THEN 1.0 ELSE 0.0 END), 4)
               AS on_time_rate,
           round(avg(epoch(delivered_ts - shipped_ts) / 86400.0), 3) AS avg_delivery_days,
           CAST(sum(CASE WHEN delivered_ts > promised_ts THEN 1 ELSE 0 END) AS BIGINT)
               AS late_count
    FROM shipments WHERE status = 'delivered' GROUP BY ALL
), returned AS (
    SELECT CAST(r.return_ts AS DATE) AS date, s.region, count(*) AS returns_count
    FROM returns AS r JOIN shipments AS s USING (shipment_id) GROUP BY ALL
)
SELECT date, region,
       coalesce(shipments_delivered, 0) AS shipments_delivered,
       coalesce(on_time_rate, 1.0) AS on_time_rate,
       coalesce(avg_delivery_days, 0.0) AS avg_delivery_days,
       coalesce(late_count, 0) AS late_count,
       coalesce(returns_count, 0) AS returns_count,
       CAST($run_at AS TIMESTAMPTZ) AS calculated_at
FROM delivered FULL JOIN returned USING (date, region)
WHERE date IN (SELECT date FROM days)
ORDER BY date, region
"""

WAREHOUSE_INVENTORY = """
SELECT snapshot_date, warehouse_id, product_id,
       ({regions})[(warehouse_id - 1) // 2 + 1] AS region,
       units_on_hand, units_on_hand < {low} AS is_low_stock,
       CAST($run_at AS TIMESTAMPTZ) AS calculated_at
FROM stock
ORDER BY snapshot_date, warehouse_id, product_id
"""

SHIPMENT_RULES = [
    Rule("not_null:order_id", pl.col("order_id").is_not_null(), "order id is missing"),
    Rule("not_null:status", pl.col("status").is_not_null(), "status is missing"),
    Rule("valid_region", pl.col("region").is_in(REGIONS), "region is not one of the four"),
    Rule("unknown_order", pl.col(KNOWN), "order is not (yet) in ventas' transaction history"),
]
SHIPMENT_REPAIRS = [
    Rule(
        "malformed_region",
        pl.col("region_raw") == pl.col("region"),
        "region had padding or lower case; conformed",
    )
]
RETURN_RULES = [
    Rule("not_null:shipment_id", pl.col("shipment_id").is_not_null(), "shipment id is missing"),
    Rule("unknown_shipment", pl.col(KNOWN), "shipment id is not (yet) known"),
]


def _sql(ctx: DomainContext, query: str, **frames: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    return ctx.sql(query.replace("$run_at", f"'{ctx.run_at.isoformat()}'"), **frames)


def _prepare_shipments(ctx: DomainContext, batch: pl.LazyFrame) -> pl.LazyFrame:
    orders = ctx.product("ventas.customer_transaction_history").select("order_id")
    batch = batch.drop("region_raw", strict=False)
    frame = _sql(ctx, FLAG_ORDERS.format(known=KNOWN), batch=batch, ref=orders)
    return frame.lazy().with_columns(pl.col("region_clean").alias("region")).drop("region_clean")


def run(ctx: DomainContext) -> None:
    """Bring logistica's curated tables up to date, then refresh its three products."""
    ctx.curate(
        "shipments",
        source="shipments",
        key=["shipment_id"],
        rules=SHIPMENT_RULES,
        repairs=SHIPMENT_REPAIRS,
        prepare=lambda batch: _prepare_shipments(ctx, batch),
        finish=lambda good: _sql(ctx, LATEST_STATUS, good=good).lazy(),
        on_match="newer:event_ts",
        retry_rules=["unknown_order"],
    )
    shipments = ctx.curated("shipments")
    known_shipments = shipments.select("shipment_id").with_columns(pl.lit(True).alias(KNOWN))
    ctx.curate(
        "returns",
        source="returns",
        key=["return_id"],
        rules=RETURN_RULES,
        prepare=lambda batch: batch.join(
            known_shipments, on="shipment_id", how="left"
        ).with_columns(pl.col(KNOWN).fill_null(False)),
        retry_rules=["unknown_shipment"],
    )
    ctx.curate("stock_levels", source="stock_levels",
               key=["snapshot_date", "warehouse_id", "product_id"])  # fmt: skip
    with ctx.step("gold.shipment_tracking"):
        _publish_tracking(ctx)
    with ctx.step("gold.delivery_performance"):
        _publish_performance(ctx)
    with ctx.step("gold.warehouse_inventory"):
        _publish_inventory(ctx)


def _publish_tracking(ctx: DomainContext) -> None:
    shipments, new_shipments, shipments_mark = ctx.changes("shipments", "shipment_tracking")
    returns, new_returns, returns_mark = ctx.changes("returns", "shipment_tracking")
    touched = pl.concat([new_shipments.select("shipment_id"), new_returns.select("shipment_id")])
    ids = touched.unique()
    batch = _sql(
        ctx,
        SHIPMENT_TRACKING,
        shipments=shipments.join(ids, on="shipment_id", how="semi"),
        returns=returns.join(ids, on="shipment_id", how="semi"),
    )
    ctx.publish_product("shipment_tracking", batch, watermarks={
        "curated/shipments": shipments_mark, "curated/returns": returns_mark,
    })  # fmt: skip


def _publish_performance(ctx: DomainContext) -> None:
    shipments, new_shipments, shipments_mark = ctx.changes("shipments", "delivery_performance")
    returns, new_returns, returns_mark = ctx.changes("returns", "delivery_performance")
    days = pl.concat([
        new_shipments.select(date=pl.col("delivered_ts").dt.date()),
        new_returns.select(date=pl.col("return_ts").dt.date()),
    ]).drop_nulls().unique()  # fmt: skip
    batch = _sql(ctx, DELIVERY_PERFORMANCE, shipments=shipments, returns=returns, days=days)
    ctx.publish_product("delivery_performance", batch, watermarks={
        "curated/shipments": shipments_mark, "curated/returns": returns_mark,
    })  # fmt: skip


def _publish_inventory(ctx: DomainContext) -> None:
    _, new_stock, stock_mark = ctx.changes("stock_levels", "warehouse_inventory")
    regions = "[" + ", ".join(f"'{r}'" for r in REGIONS) + "]"
    query = WAREHOUSE_INVENTORY.format(regions=regions, low=LOW_STOCK_UNITS)
    batch = _sql(ctx, query, stock=new_stock)
    ctx.publish_product(
        "warehouse_inventory", batch, watermarks={"curated/stock_levels": stock_mark}
    )
