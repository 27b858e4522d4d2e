"""Marketing pipeline (DuckDB SQL through the platform's `ctx.sql`).

curated: campaigns and campaign_events, incremental from raw. A garbled event type such as
'OPEN!' is repaired to 'open' and logged; an event of a campaign marketing does not know waits in
quarantine and is retried every run (the campaign may arrive late).

gold:
- attribution_model: for every completed order in ventas.customer_transaction_history, the
  customer's campaign clicks in the 7 days before it are its touches. last_touch credits the whole
  amount_usd to the campaign of the latest click; linear splits it over the clicks (a campaign
  clicked twice gets two shares). Shares are rounded to cents and the rounding remainder goes to
  the most-clicked campaign, so each model's rows of an order add up to the order's amount_usd.
  Only orders touched by new ventas rows or new clicks are recomputed; rows whose campaign no
  longer applies (a late click changed the last touch) are removed.
- campaign_metrics: sends, opens, clicks and conversions (distinct orders of conversion events)
  per campaign, rates over sends, and last-touch attributed revenue. One row per campaign, so it
  is recomputed whole whenever its inputs changed.
- customer_segments: RFM at the run's as-of date, the newest completed order date in ventas:
  recency_days = as-of - last completed order, orders_90d and spend_90d_usd over the 90 days up to
  it, emails_30d = campaign sends (every channel) in the 30 days up to it, open_rate_30d = opens /
  sends in that window. Segment, first rule that applies:
    hibernating  no completed order, or none for 60+ days
    at_risk      none for 30..59 days
    new          first completed order less than 30 days ago
    champion     last order at most 14 days ago and both orders_90d and spend_90d_usd in the top
                 fifth of customers who ordered in the last 90 days
    loyal        everyone else
  Recency moves with the as-of date, so the product is recomputed whole whenever inputs changed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import polars as pl

from lakehouse import storage
from lakehouse.context import CHECK_PREFIX, DomainContext
from lakehouse.quality import Rule

TS = pl.Datetime("us", "UTC")
HISTORY = "ventas.customer_transaction_history"
CATALOG = "producto.catalog"
EVENT_TYPES = ("send", "open", "click", "conversion")
CHANNELS = ("email", "push", "sms")
ATTRIBUTION_WINDOW = timedelta(days=7)
KNOWN = CHECK_PREFIX + "known"

Sql = Callable[..., pl.DataFrame]  # ctx.sql: (query, **frames) -> Polars
Table = pl.DataFrame | pl.LazyFrame | str  # a frame, or SQL such as "delta_scan('...')"

EVENT_COLUMNS = (
    "event_id", "campaign_id", "customer_id", "event_type", "event_ts", "order_id", "ingested_at",
)  # fmt: skip
CAMPAIGN_COLUMNS = (
    "campaign_id", "name", "channel", "target_category", "start_date", "end_date", "budget_usd",
    "ingested_at",
)  # fmt: skip


def _query(sql: Sql, query: str, **tables: Table) -> pl.DataFrame:
    """Run a query whose {name} placeholders are frames (registered under that name) or SQL
    table expressions (so large Delta tables are scanned by DuckDB, not collected first)."""
    frames = {name: t for name, t in tables.items() if not isinstance(t, str)}
    text = query.format(**{name: t if isinstance(t, str) else name for name, t in tables.items()})
    return sql(text, **frames)  # ctx.sql runs on UTC and returns UTC timestamps


# ---------------------------------------------------------------- curated
PREPARE_CAMPAIGNS = """
SELECT r.* REPLACE (lower(trim(r.channel)) AS channel),
       coalesce(r.target_category IN (SELECT category FROM {catalog}), false) AS _chk_category
FROM {raw} AS r
"""


def prepare_campaigns(sql: Sql, raw: pl.LazyFrame, catalog: pl.LazyFrame) -> pl.LazyFrame:
    """Conform the channel and flag campaigns whose target category the catalog lacks."""
    return _query(
        sql, PREPARE_CAMPAIGNS, raw=raw, catalog=catalog.select("category").unique()
    ).lazy()


CAMPAIGN_RULES = [
    Rule("not_null:campaign_id", pl.col("campaign_id").is_not_null(), "campaign id is missing"),
    Rule("valid_channel", pl.col("channel").is_in(CHANNELS).fill_null(False), "unknown channel"),
    Rule(
        "valid_dates",
        (pl.col("end_date") >= pl.col("start_date")).fill_null(False),
        "dates are missing or the campaign ends before it starts",
    ),
    Rule("non_negative:budget_usd", (pl.col("budget_usd") >= 0).fill_null(False), "bad budget"),
    Rule(
        "unknown_category",
        pl.col(CHECK_PREFIX + "category"),
        "target category is not (yet) a category of producto.catalog",
    ),
]

PREPARE_EVENTS = """
SELECT r.* REPLACE (
           lower(regexp_replace(trim(r.event_type), '[^A-Za-z]', '', 'g')) AS event_type,
           coalesce(r.event_type_raw, r.event_type) AS event_type_raw),
       c.campaign_id IS NOT NULL AS _chk_known
FROM {raw} AS r
LEFT JOIN (SELECT DISTINCT campaign_id FROM {campaigns}) AS c ON r.campaign_id = c.campaign_id
"""


def prepare_events(sql: Sql, raw: pl.LazyFrame, campaigns: pl.LazyFrame) -> pl.LazyFrame:
    """Conform event types ('OPEN!' -> 'open', the delivered value kept in event_type_raw; rows
    retried from quarantine already carry it) and flag events of campaigns not known (yet)."""
    if "event_type_raw" not in raw.collect_schema().names():
        raw = raw.with_columns(event_type_raw=pl.lit(None, pl.String))
    return _query(sql, PREPARE_EVENTS, raw=raw, campaigns=campaigns.select("campaign_id")).lazy()


EVENT_RULES = [
    Rule("not_null:event_type", pl.col("event_type").is_not_null(), "event type is missing"),
    Rule(
        "valid_event_type",
        pl.col("event_type").is_in(EVENT_TYPES).fill_null(True),
        "event type is not send, open, click or conversion",
    ),
    Rule("not_null:customer_id", pl.col("customer_id").is_not_null(), "customer id is missing"),
    Rule("not_null:campaign_id", pl.col("campaign_id").is_not_null(), "campaign id is missing"),
    Rule(
        "unknown_campaign",
        pl.col("campaign_id").is_null() | pl.col(KNOWN),
        "campaign id is not (yet) a curated campaign",
    ),
    Rule("not_null:event_ts", pl.col("event_ts").is_not_null(), "event time is missing"),
]
EVENT_REPAIRS = [
    Rule(
        "malformed_event_type",
        pl.col("event_type_raw") == pl.col("event_type"),
        "event type had upper case or punctuation; conformed (e.g. 'OPEN!' -> 'open')",
    )
]


# ---------------------------------------------------------------- gold
ATTRIBUTION = """
WITH touches AS (
    SELECT o.order_id, k.campaign_id, o.customer_id, o.order_date, o.amount_usd,
           count(*) AS touches, max(k.event_ts) AS last_click
    FROM {orders} AS o
    JOIN {clicks} AS k
      ON k.customer_id = o.customer_id
     AND k.event_ts < o.order_ts
     AND k.event_ts >= o.order_ts - INTERVAL 7 DAY
    GROUP BY ALL
), ranked AS (
    SELECT *,
           row_number() OVER (
               PARTITION BY order_id ORDER BY last_click DESC, campaign_id DESC
           ) AS recency_rank,
           row_number() OVER (
               PARTITION BY order_id ORDER BY touches DESC, last_click DESC, campaign_id DESC
           ) AS weight_rank,
           round(amount_usd * touches / sum(touches) OVER (PARTITION BY order_id), 2) AS share
    FROM touches
), linear AS (
    SELECT *,
           CASE WHEN weight_rank = 1
                THEN amount_usd - (sum(share) OVER (PARTITION BY order_id) - share)
                ELSE share END AS credit
    FROM ranked
)
SELECT order_id, campaign_id, 'last_touch' AS model, customer_id, order_date,
       amount_usd AS attributed_revenue_usd, touches
FROM ranked WHERE recency_rank = 1
UNION ALL
SELECT order_id, campaign_id, 'linear' AS model, customer_id, order_date,
       round(credit, 2) AS attributed_revenue_usd, touches
FROM linear
ORDER BY order_id, model, campaign_id
"""


def attribution(sql: Sql, orders: pl.DataFrame, clicks: pl.DataFrame, at: datetime) -> pl.DataFrame:
    """Last-touch and linear credit of completed orders (order_id, customer_id, order_ts,
    order_date, amount_usd) to the campaigns of the customer's clicks (customer_id, campaign_id,
    event_ts) in the 7 days before each order; orders without clicks get no rows."""
    return _query(sql, ATTRIBUTION, orders=orders, clicks=clicks).select(
        pl.col("order_id").cast(pl.Int64),
        pl.col("campaign_id").cast(pl.Int64),
        pl.col("model").cast(pl.String),
        pl.col("customer_id").cast(pl.Int64),
        pl.col("order_date").cast(pl.Date),
        pl.col("attributed_revenue_usd").cast(pl.Float64),
        pl.col("touches").cast(pl.Int64),
        calculated_at=pl.lit(at, dtype=TS),
    )


CAMPAIGN_METRICS = """
WITH counts AS (
    SELECT campaign_id,
           count(*) FILTER (WHERE event_type = 'send') AS sends,
           count(*) FILTER (WHERE event_type = 'open') AS opens,
           count(*) FILTER (WHERE event_type = 'click') AS clicks,
           count(DISTINCT order_id) FILTER (WHERE event_type = 'conversion') AS conversions
    FROM {events}
    GROUP BY campaign_id
), credit AS (
    SELECT campaign_id, sum(attributed_revenue_usd) AS attributed_revenue_usd
    FROM {attribution}
    WHERE model = 'last_touch'
    GROUP BY campaign_id
)
SELECT c.campaign_id, c.name, c.channel, c.target_category, c.start_date, c.end_date,
       c.budget_usd,
       coalesce(n.sends, 0) AS sends,
       coalesce(n.opens, 0) AS opens,
       coalesce(n.clicks, 0) AS clicks,
       coalesce(n.conversions, 0) AS conversions,
       coalesce(round(n.opens / nullif(n.sends, 0), 4), 0) AS open_rate,
       coalesce(round(n.clicks / nullif(n.sends, 0), 4), 0) AS click_rate,
       coalesce(round(n.conversions / nullif(n.sends, 0), 4), 0) AS conversion_rate,
       round(coalesce(r.attributed_revenue_usd, 0), 2) AS attributed_revenue_usd
FROM {campaigns} AS c
LEFT JOIN counts AS n USING (campaign_id)
LEFT JOIN credit AS r USING (campaign_id)
ORDER BY c.campaign_id
"""


def campaign_metrics(
    sql: Sql,
    campaigns: Table,
    events: Table,
    attributed: Table,
    at: datetime,
) -> pl.DataFrame:
    """Funnel counts, rates over sends and last-touch revenue of every campaign."""
    frame = _query(
        sql, CAMPAIGN_METRICS, campaigns=campaigns, events=events, attribution=attributed
    )
    return frame.select(
        pl.col("campaign_id").cast(pl.Int64),
        pl.col("name").cast(pl.String),
        pl.col("channel").cast(pl.String),
        pl.col("target_category").cast(pl.String),
        pl.col("start_date").cast(pl.Date),
        pl.col("end_date").cast(pl.Date),
        pl.col("budget_usd").cast(pl.Float64),
        *(pl.col(c).cast(pl.Int64) for c in ("sends", "opens", "clicks", "conversions")),
        *(pl.col(c).cast(pl.Float64) for c in ("open_rate", "click_rate", "conversion_rate")),
        pl.col("attributed_revenue_usd").cast(pl.Float64),
        calculated_at=pl.lit(at, dtype=TS),
    )


CUSTOMER_SEGMENTS = """
WITH as_of AS (
    SELECT max(order_date) AS day FROM {orders}
), rfm AS (
    SELECT o.customer_id,
           min(o.order_date) AS first_order,
           max(o.order_date) AS last_order,
           count(*) FILTER (WHERE o.order_date > a.day - 90) AS orders_90d,
           coalesce(sum(o.amount_usd) FILTER (WHERE o.order_date > a.day - 90), 0) AS spend_90d
    FROM {orders} AS o, as_of AS a
    GROUP BY o.customer_id
), bars AS (
    SELECT quantile_cont(orders_90d, 0.8) AS orders_bar, quantile_cont(spend_90d, 0.8) AS spend_bar
    FROM rfm WHERE orders_90d > 0
), mail AS (
    SELECT e.customer_id,
           count(*) FILTER (WHERE e.event_type = 'send') AS emails_30d,
           count(*) FILTER (WHERE e.event_type = 'open') AS opens_30d
    FROM {events} AS e, as_of AS a
    WHERE CAST(e.event_ts AS DATE) > a.day - 30 AND CAST(e.event_ts AS DATE) <= a.day
    GROUP BY e.customer_id
), people AS (
    SELECT customer_id FROM {customers}
    UNION SELECT customer_id FROM {events}
)
SELECT p.customer_id,
       CASE WHEN r.last_order IS NULL OR a.day - r.last_order >= 60 THEN 'hibernating'
            WHEN a.day - r.last_order >= 30 THEN 'at_risk'
            WHEN a.day - r.first_order < 30 THEN 'new'
            WHEN a.day - r.last_order <= 14
                 AND r.orders_90d >= b.orders_bar AND r.spend_90d >= b.spend_bar THEN 'champion'
            ELSE 'loyal' END AS segment,
       a.day - r.last_order AS recency_days,
       coalesce(r.orders_90d, 0) AS orders_90d,
       round(coalesce(r.spend_90d, 0), 2) AS spend_90d_usd,
       coalesce(m.emails_30d, 0) AS emails_30d,
       CASE WHEN coalesce(m.emails_30d, 0) > 0
            THEN round(least(m.opens_30d / m.emails_30d, 1), 4) END AS open_rate_30d
FROM people AS p
CROSS JOIN as_of AS a
CROSS JOIN bars AS b
LEFT JOIN rfm AS r USING (customer_id)
LEFT JOIN mail AS m USING (customer_id)
WHERE a.day IS NOT NULL
ORDER BY p.customer_id
"""


def customer_segments(
    sql: Sql,
    orders: Table,
    customers: Table,
    events: Table,
    at: datetime,
) -> pl.DataFrame:
    """RFM segment and email engagement of every customer who ordered (customers: customer_id)
    or was messaged, as of the newest date among the completed orders (customer_id, order_date,
    amount_usd); events are curated campaign events."""
    frame = _query(sql, CUSTOMER_SEGMENTS, orders=orders, customers=customers, events=events)
    return frame.select(
        pl.col("customer_id").cast(pl.Int64),
        pl.col("segment").cast(pl.String),
        pl.col("recency_days").cast(pl.Int64),
        pl.col("orders_90d").cast(pl.Int64),
        pl.col("spend_90d_usd").cast(pl.Float64),
        pl.col("emails_30d").cast(pl.Int64),
        pl.col("open_rate_30d").cast(pl.Float64),
        calculated_at=pl.lit(at, dtype=TS),
    )


# ---------------------------------------------------------------- run
def run(ctx: DomainContext) -> None:
    """Bring marketing's curated tables up to date, then refresh the products they touch."""
    ctx.curate(
        "campaigns",
        source="campaigns",
        key=["campaign_id"],
        rules=CAMPAIGN_RULES,
        prepare=lambda raw: prepare_campaigns(ctx.sql, raw, ctx.product(CATALOG)),
        finish=lambda good: good.select(CAMPAIGN_COLUMNS),
        retry_rules=["unknown_category"],
    )
    if not ctx.has("curated", "campaigns"):
        return
    if ctx.has("raw", "campaign_events"):
        ctx.curate(
            "campaign_events",
            source="campaign_events",
            key=["event_id"],
            rules=EVENT_RULES,
            prepare=lambda raw: prepare_events(ctx.sql, raw, ctx.curated("campaigns")),
            repairs=EVENT_REPAIRS,
            finish=lambda good: good.select(EVENT_COLUMNS),
            retry_rules=["unknown_campaign"],
        )
    if not ctx.has("curated", "campaign_events"):
        return
    with ctx.step("gold.attribution_model"):
        _publish_attribution(ctx, ctx.product(HISTORY))
    with ctx.step("gold.campaign_metrics"):
        _publish_metrics(ctx)
    with ctx.step("gold.customer_segments"):
        _publish_segments(ctx, ctx.product(HISTORY))


def _scan(ctx: DomainContext, layer: str, table: str) -> str:
    return f"delta_scan({ctx.delta_sql_path(layer, table)})"


def _product_changes(
    ctx: DomainContext, frame: pl.LazyFrame, product: str, source: str
) -> tuple[pl.LazyFrame, datetime | None]:
    """Rows of a product (re)computed since `product` last read it, and the new mark."""
    mark = ctx.watermarks("gold", product).get(source)
    newest = frame.select(pl.col("calculated_at").max()).collect().item()
    return ctx.since(frame, mark, "calculated_at"), newest


def _drop_stale(ctx: DomainContext, product: str, batch: pl.DataFrame, scope: pl.DataFrame) -> None:
    """Delete a product's rows for the recomputed orders (`scope`) that the new batch no longer
    has. The platform's publish only upserts; this commit runs first, so a crash before the
    publish leaves the watermark where it was and the next run redoes both."""
    path = ctx.path("gold", product)
    if not storage.exists(path) or (ctx.full_refresh and f"gold/{product}" not in ctx.written):
        return
    keys = ["order_id", "campaign_id", "model"]
    stale = (
        storage.scan(path)
        .select(keys)
        .join(scope.lazy(), on="order_id", how="semi")
        .join(batch.lazy().select(keys), on=keys, how="anti")
        .collect()
    )
    if stale.is_empty():
        return
    from deltalake import DeltaTable

    (
        DeltaTable(str(path))
        .merge(
            stale.to_arrow(),
            predicate=" AND ".join(f"t.{k} = s.{k}" for k in keys),
            source_alias="s",
            target_alias="t",
        )
        .when_matched_delete()
        .execute()
    )


def _publish_attribution(ctx: DomainContext, history: pl.LazyFrame) -> None:
    product = "attribution_model"
    events, new_events, events_mark = ctx.changes("campaign_events", product)
    new_orders, orders_mark = _product_changes(ctx, history, product, HISTORY)
    completed = history.filter(pl.col("status") == "completed").select(
        "order_id", "customer_id", "order_ts", "order_date", "amount_usd"
    )
    new_clicks = new_events.filter(pl.col("event_type") == "click").select(
        "customer_id", "event_ts"
    )
    reached = (
        completed.join(new_clicks, on="customer_id")
        .filter(
            (pl.col("order_ts") > pl.col("event_ts"))
            & (pl.col("order_ts") <= pl.col("event_ts") + ATTRIBUTION_WINDOW)
        )
        .select("order_id")
    )
    touched = pl.concat(
        [new_orders.filter(pl.col("status") == "completed").select("order_id"), reached]
    ).unique()
    orders = completed.join(touched, on="order_id", how="semi").collect()
    if orders.is_empty():
        return
    clicks = (
        events.filter(pl.col("event_type") == "click")
        .join(orders.lazy().select("customer_id").unique(), on="customer_id", how="semi")
        .select("customer_id", "campaign_id", "event_ts")
        .collect()
    )
    batch = attribution(ctx.sql, orders, clicks, ctx.run_at)
    _drop_stale(ctx, product, batch, orders.select("order_id"))
    marks = {"curated/campaign_events": events_mark, HISTORY: orders_mark}
    ctx.publish_product(product, batch, watermarks=marks)


def _publish_metrics(ctx: DomainContext) -> None:
    product = "campaign_metrics"
    _, new_campaigns, campaigns_mark = ctx.changes("campaigns", product)
    _, new_events, events_mark = ctx.changes("campaign_events", product)
    changed = [new_campaigns.select("campaign_id"), new_events.select("campaign_id")]
    marks = {"curated/campaigns": campaigns_mark, "curated/campaign_events": events_mark}
    credit: Table = pl.DataFrame(
        schema={"campaign_id": pl.Int64, "model": pl.String, "attributed_revenue_usd": pl.Float64}
    )
    if ctx.has("gold", "attribution_model"):
        new_credit, marks["gold/attribution_model"] = _product_changes(
            ctx, ctx.gold("attribution_model"), product, "gold/attribution_model"
        )
        changed.append(new_credit.select("campaign_id"))
        credit = _scan(ctx, "gold", "attribution_model")
    if pl.concat(changed).head(1).collect().is_empty():
        return
    batch = campaign_metrics(
        ctx.sql,
        _scan(ctx, "curated", "campaigns"),
        _scan(ctx, "curated", "campaign_events"),
        credit,
        ctx.run_at,
    )
    ctx.publish_product(product, batch, watermarks=marks)


def _publish_segments(ctx: DomainContext, history: pl.LazyFrame) -> None:
    product = "customer_segments"
    _, new_events, events_mark = ctx.changes("campaign_events", product)
    new_orders, orders_mark = _product_changes(ctx, history, product, HISTORY)
    changed = pl.concat([new_events.select("customer_id"), new_orders.select("customer_id")])
    if changed.head(1).collect().is_empty():
        return
    batch = customer_segments(
        ctx.sql,
        history.filter(pl.col("status") == "completed").select(
            "customer_id", "order_date", "amount_usd"
        ),
        history.select("customer_id").unique(),
        _scan(ctx, "curated", "campaign_events"),
        ctx.run_at,
    )
    marks = {"curated/campaign_events": events_mark, HISTORY: orders_mark}
    ctx.publish_product(product, batch, watermarks=marks)
