"""Finanzas customer features: weekly point-in-time snapshots of payment trouble and fraud risk.

Payments come from finanzas' own gold payment_transactions (statuses settled, risk scores)
joined on payment_id to curated payments for `ingested_at`, which the product does not carry;
a payment counts once payment_ts < T and ingested_at <= T. Chargebacks are curated chargebacks
with chargeback_ts < T and ingested_at <= T (they arrive weeks after the payment). Every customer
with a payment known by T gets a row.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl

from domains.finanzas.pipeline import CHARGEBACK_DAYS
from lakehouse import snapshots as snap
from lakehouse.config import get_settings

DOMAIN = "finanzas"
TABLE = "customer_features"
TS = snap.TS
WINDOW_DAYS = 30
EVERY_DAYS = 7
SNAPSHOTS_PER_BATCH = 8

SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Int64(),
    "event_timestamp": TS,
    "created_timestamp": TS,
    "payment_attempts_30d": pl.Int64(),
    "payment_failures_30d": pl.Int64(),
    "avg_fraud_score_30d": pl.Float64(),
    "max_fraud_score_30d": pl.Float64(),
    "chargebacks_90d": pl.Int64(),
}
NO_CHARGEBACKS = {"customer_id": pl.Int64, "chargeback_ts": TS, "ingested_at": TS}


def features_path() -> Path:
    """Delta location of the finanzas customer feature table."""
    return get_settings().table_path(DOMAIN, "features", TABLE)


def payments(transactions: pl.LazyFrame, curated: pl.LazyFrame) -> pl.LazyFrame:
    """Settled payment attempts (gold) with the time each reached the lakehouse (curated)."""
    return transactions.select(
        "payment_id", "customer_id", "status", "risk_score", "payment_ts"
    ).join(curated.select("payment_id", "ingested_at"), on="payment_id")


def customer_features_at(
    paid: pl.LazyFrame,
    chargebacks: pl.LazyFrame,
    customers: pl.LazyFrame,
    snapshot: datetime,
) -> pl.LazyFrame:
    """One snapshot: payment attempts, failures, fraud scores and chargebacks of every customer
    with a payment known by then (`customers`: customer_id, first_seen)."""
    recent = (
        paid.filter(
            snap.visible("payment_ts", snapshot) & snap.since("payment_ts", snapshot, WINDOW_DAYS)
        )
        .group_by("customer_id")
        .agg(
            payment_attempts_30d=pl.len(),
            payment_failures_30d=(pl.col("status") == "failed").sum(),
            avg_fraud_score_30d=snap.exact_mean(pl.col("risk_score")),
            max_fraud_score_30d=pl.col("risk_score").max(),
        )
    )
    disputed = (
        chargebacks.filter(
            snap.visible("chargeback_ts", snapshot)
            & snap.since("chargeback_ts", snapshot, CHARGEBACK_DAYS)
        )
        .group_by("customer_id")
        .agg(chargebacks_90d=pl.len())
    )
    return (
        snap.present(customers, "customer_id", snapshot)
        .join(recent, on="customer_id", how="left")
        .join(disputed, on="customer_id", how="left")
        .select(
            "customer_id",
            **snap.stamped(snapshot),
            payment_attempts_30d=pl.col("payment_attempts_30d").fill_null(0),
            payment_failures_30d=pl.col("payment_failures_30d").fill_null(0),
            avg_fraud_score_30d="avg_fraud_score_30d",
            max_fraud_score_30d="max_fraud_score_30d",
            chargebacks_90d=pl.col("chargebacks_90d").fill_null(0),
        )
        .cast(SCHEMA)  # type: ignore[arg-type]
    )


def build(every_days: int = EVERY_DAYS) -> int:
    """The finanzas feature job (`mesh features build`): weekly customer snapshots; rows."""
    ctx = snap.context(DOMAIN)
    with ctx.step(f"features.{TABLE}") as run:
        paid = payments(ctx.gold("payment_transactions"), ctx.curated("payments"))
        chargebacks = snap.optional(ctx, "curated", "chargebacks", NO_CHARGEBACKS).select(
            "customer_id", "chargeback_ts", "ingested_at"
        )
        customers = (
            snap.first_seen(paid, "customer_id", "payment_ts").collect(engine="streaming").lazy()
        )

        def compute(batch: list[datetime]) -> pl.LazyFrame:
            recent = snap.span(paid, "payment_ts", batch, WINDOW_DAYS)
            disputes = snap.span(chargebacks, "chargeback_ts", batch, CHARGEBACK_DAYS)
            return pl.concat([customer_features_at(recent, disputes, customers, s) for s in batch])

        times = snap.snapshot_times([(paid, "payment_ts")], every_days)
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
