"""Logistica pipeline (DuckDB SQL): curated shipments; gold delivery_performance."""

from __future__ import annotations

from lakehouse.context import DomainContext

CURATE_SHIPMENTS = """
SELECT shipment_id, order_id, customer_id, upper(trim(region)) AS region, warehouse_id, carrier,
       status, promised_ts, shipped_ts, delivered_ts, event_ts, ingested_at
FROM delta_scan({raw})
WHERE order_id IS NOT NULL AND status IS NOT NULL
  AND upper(trim(region)) IN ('LATAM', 'NA', 'EU', 'APAC')
-- the latest status of each shipment wins; resent copies collapse
QUALIFY row_number() OVER (
    PARTITION BY shipment_id ORDER BY (status = 'delivered') DESC, event_ts DESC, ingested_at
) = 1
ORDER BY shipment_id
"""

DELIVERY_PERFORMANCE = """
SELECT CAST(delivered_ts AS DATE) AS date, region,
       count(*) AS shipments_delivered,
       round(avg(CASE WHEN delivered_ts <= promised_ts THEN 1.0 ELSE 0.0 END), 4) AS on_time_rate,
       round(avg(epoch(delivered_ts - shipped_ts) / 86400.0), 3) AS avg_delivery_days,
       sum(CASE WHEN delivered_ts > promised_ts THEN 1 ELSE 0 END) AS late_count
FROM delta_scan({curated})
WHERE status = 'delivered'
GROUP BY ALL
ORDER BY date, region
"""


def run(ctx: DomainContext) -> None:
    """Build logistica's curated shipments and its delivery_performance product."""
    shipments = ctx.sql(CURATE_SHIPMENTS.format(raw=ctx.delta_sql_path("raw", "shipments")))
    ctx.publish("curated", "shipments", shipments)
    perf = ctx.sql(DELIVERY_PERFORMANCE.format(curated=ctx.delta_sql_path("curated", "shipments")))
    ctx.publish("gold", "delivery_performance", perf)
