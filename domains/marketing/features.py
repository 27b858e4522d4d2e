"""Marketing customer features: weekly point-in-time snapshots of campaign pressure, engagement
and the RFM segment.

Email counts and rates come from curated campaign events with event_ts < T and
ingested_at <= T; a touch is any campaign event (send, open, click, conversion). The segment is
the one marketing's pipeline would have published at T: `customer_segments` from
domains/marketing/pipeline.py run over the completed orders of ventas.customer_transaction_history
(declared) known at T, so its as-of day is the newest order date known then. Every customer who
had ordered or been messaged by T gets a row.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import polars as pl

from domains.marketing.pipeline import EVENT_TYPES, HISTORY, customer_segments
from lakehouse import snapshots as snap
from lakehouse.config import get_settings

DOMAIN = "marketing"
TABLE = "customer_features"
TS = snap.TS
WINDOW_DAYS = 30
RECENT_DAYS = 7
TOUCH_LOOKBACK_DAYS = 90
EVERY_DAYS = 7
# Each snapshot reads 90 days of events; four at a time keeps a batch near 110 days of events.
SNAPSHOTS_PER_BATCH = 4

SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Int64(),
    "event_timestamp": TS,
    "created_timestamp": TS,
    "emails_received_7d": pl.Int64(),
    "emails_received_30d": pl.Int64(),
    "open_rate_30d": pl.Float64(),
    "click_rate_30d": pl.Float64(),
    "days_since_last_touch": pl.Int64(),
    "segment": pl.String(),
}
NO_EVENTS = {"customer_id": pl.Int64, "event_type": pl.String, "event_ts": TS, "ingested_at": TS}

Sql = Callable[..., pl.DataFrame]  # DomainContext.sql: (query, **frames) -> Polars


def features_path() -> Path:
    """Delta location of the marketing customer feature table."""
    return get_settings().table_path(DOMAIN, "features", TABLE)


def engagement_at(events: pl.LazyFrame, snapshot: datetime) -> pl.LazyFrame:
    """Sends, open and click rates over sends, and days since the last touch, per customer."""
    seen = events.filter(
        snap.visible("event_ts", snapshot) & snap.since("event_ts", snapshot, TOUCH_LOOKBACK_DAYS)
    )
    month = snap.since("event_ts", snapshot, WINDOW_DAYS)
    week = snap.since("event_ts", snapshot, RECENT_DAYS)

    def count(kind: str, within: pl.Expr) -> pl.Expr:
        return ((pl.col("event_type") == kind) & within).sum()

    sends = pl.col("emails_received_30d")
    return (
        seen.group_by("customer_id")
        .agg(
            emails_received_7d=count("send", week),
            emails_received_30d=count("send", month),
            opens=count("open", month),
            clicks=count("click", month),
            last_touch=pl.col("event_ts").max(),
        )
        .select(
            "customer_id",
            "emails_received_7d",
            "emails_received_30d",
            # an open can outlive its send's window, so the rates are capped as the pipeline's
            open_rate_30d=pl.when(sends > 0).then(pl.min_horizontal(pl.col("opens") / sends, 1.0)),
            click_rate_30d=pl.when(sends > 0).then(
                pl.min_horizontal(pl.col("clicks") / sends, 1.0)
            ),
            days_since_last_touch=(snap.at(snapshot) - pl.col("last_touch")).dt.total_days(),
        )
    )


def segments_at(
    sql: Sql, orders: pl.LazyFrame, people: pl.DataFrame, snapshot: datetime
) -> pl.DataFrame:
    """The RFM segment of each person (customer_id) from the completed orders known at the
    snapshot (ventas transaction history rows), by marketing's own segment rule."""
    completed = orders.filter(
        snap.visible("order_ts", snapshot) & (pl.col("status") == "completed")
    ).select("customer_id", "order_date", "amount_usd")
    empty = pl.DataFrame(schema={k: v for k, v in NO_EVENTS.items() if k != "ingested_at"})
    rows = customer_segments(sql, completed.collect(), people, empty, snapshot)
    return rows.select("customer_id", "segment")


def customer_features_at(
    sql: Sql,
    events: pl.LazyFrame,
    orders: pl.LazyFrame,
    people: pl.LazyFrame,
    snapshot: datetime,
) -> pl.LazyFrame:
    """One snapshot: campaign pressure, engagement and segment of everyone who had ordered or
    been messaged by then (`people`: customer_id, first_seen)."""
    present = snap.present(people, "customer_id", snapshot).collect()
    segments = segments_at(sql, orders, present, snapshot)
    return (
        present.lazy()
        .join(engagement_at(events, snapshot), on="customer_id", how="left")
        .join(segments.lazy(), on="customer_id", how="left")
        .select(
            "customer_id",
            **snap.stamped(snapshot),
            emails_received_7d=pl.col("emails_received_7d").fill_null(0),
            emails_received_30d=pl.col("emails_received_30d").fill_null(0),
            open_rate_30d="open_rate_30d",
            click_rate_30d="click_rate_30d",
            days_since_last_touch="days_since_last_touch",
            segment="segment",
        )
        .cast(SCHEMA)  # type: ignore[arg-type]
    )


def build(every_days: int = EVERY_DAYS) -> int:
    """The marketing feature job (`mesh features build`): weekly customer snapshots; rows."""
    ctx = snap.context(DOMAIN)
    with ctx.step(f"features.{TABLE}") as run:
        events = snap.optional(ctx, "curated", "campaign_events", NO_EVENTS).select(
            "customer_id",
            pl.col("event_type").cast(pl.Enum(EVENT_TYPES)),
            "event_ts",
            "ingested_at",
        )
        orders = ctx.product(HISTORY).select(
            "customer_id", "order_ts", "order_date", "amount_usd", "status", "ingested_at"
        )
        people = (
            pl.concat(
                [
                    snap.first_seen(orders, "customer_id", "order_ts"),
                    snap.first_seen(events, "customer_id", "event_ts"),
                ]
            )
            .group_by("customer_id")
            .agg(pl.col("first_seen").min())
            .collect(engine="streaming")
            .lazy()
        )

        def compute(batch: list[datetime]) -> pl.LazyFrame:
            recent = snap.span(events, "event_ts", batch, TOUCH_LOOKBACK_DAYS)
            return pl.concat(
                [customer_features_at(ctx.sql, recent, orders, people, s) for s in batch]
            )

        times = snap.snapshot_times([(orders, "order_ts"), (events, "event_ts")], every_days)
        return snap.write(
            run,
            DOMAIN,
            TABLE,
            times,
            SNAPSHOTS_PER_BATCH,
            compute,
            SCHEMA,
            "customer_id",
            every_days,
        )
