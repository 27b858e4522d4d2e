"""Marketing pipeline (DuckDB SQL): curated campaign events; gold campaign_metrics."""

from __future__ import annotations

from lakehouse.context import DomainContext

CURATE_EVENTS = """
SELECT event_id, campaign_id, customer_id,
       -- a garbled type such as 'OPEN!' is repaired, anything else unknown is dropped
       lower(regexp_replace(trim(event_type), '[^A-Za-z]', '', 'g')) AS event_type,
       event_ts, order_id, ingested_at
FROM delta_scan({raw})
WHERE event_type IS NOT NULL
  AND lower(regexp_replace(trim(event_type), '[^A-Za-z]', '', 'g'))
      IN ('send', 'open', 'click', 'conversion')
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ingested_at) = 1
ORDER BY event_id
"""

CAMPAIGN_METRICS = """
WITH counts AS (
    SELECT campaign_id,
           count(*) FILTER (WHERE event_type = 'send') AS sends,
           count(*) FILTER (WHERE event_type = 'open') AS opens,
           count(*) FILTER (WHERE event_type = 'click') AS clicks,
           count(*) FILTER (WHERE event_type = 'conversion') AS conversions
    FROM delta_scan({events})
    GROUP BY campaign_id
)
SELECT c.campaign_id, c.name, c.channel, c.target_category, c.start_date, c.end_date,
       c.budget_usd, coalesce(sends, 0) AS sends, coalesce(opens, 0) AS opens,
       coalesce(clicks, 0) AS clicks, coalesce(conversions, 0) AS conversions,
       round(coalesce(opens, 0) / greatest(sends, 1), 4) AS open_rate,
       round(coalesce(clicks, 0) / greatest(sends, 1), 4) AS click_rate,
       round(coalesce(conversions, 0) / greatest(clicks, 1), 4) AS conversion_rate
FROM (SELECT * FROM delta_scan({campaigns})
      QUALIFY row_number() OVER (PARTITION BY campaign_id ORDER BY ingested_at) = 1) AS c
LEFT JOIN counts USING (campaign_id)
ORDER BY c.campaign_id
"""


def run(ctx: DomainContext) -> None:
    """Build marketing's curated campaign events and its campaign_metrics product."""
    events = ctx.sql(CURATE_EVENTS.format(raw=ctx.delta_sql_path("raw", "campaign_events")))
    ctx.publish("curated", "campaign_events", events)
    metrics = ctx.sql(
        CAMPAIGN_METRICS.format(
            events=ctx.delta_sql_path("curated", "campaign_events"),
            campaigns=ctx.delta_sql_path("raw", "campaigns"),
        )
    )
    ctx.publish("gold", "campaign_metrics", metrics)
