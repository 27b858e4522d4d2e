"""Finanzas pipeline (Polars): curated payments; gold payment_transactions."""

from __future__ import annotations

import polars as pl

from lakehouse.context import DomainContext
from lakehouse.reference import CURRENCIES, FX_PER_USD


def curate_payments(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Valid, deduplicated payment attempts with conformed currency and USD amount."""
    return (
        raw.sort("ingested_at", "payment_id")
        .unique(subset=["payment_id"], keep="first", maintain_order=True)
        .with_columns(pl.col("currency").str.strip_chars().str.to_uppercase())
        .filter(
            pl.col("amount").is_not_null()
            & (pl.col("amount") >= 0)
            & pl.col("status").is_not_null()
            & pl.col("currency").is_in(CURRENCIES)
        )
        .with_columns(
            amount_usd=(
                pl.col("amount") / pl.col("currency").replace_strict(FX_PER_USD, default=None)
            ).round(2)
        )
    )


def payment_transactions(payments: pl.LazyFrame) -> pl.LazyFrame:
    """One row per payment attempt: amount, method, outcome and risk score."""
    return payments.select(
        "payment_id", "order_id", "customer_id", "attempt", "amount", "currency", "amount_usd",
        "method", "status", "failure_reason", "risk_score", "payment_ts",
        pl.col("payment_ts").dt.date().alias("payment_date"),
    ).sort("payment_id")  # fmt: skip


def run(ctx: DomainContext) -> None:
    """Build finanzas' curated payments and its payment_transactions product."""
    payments = curate_payments(ctx.raw("payments")).collect()
    ctx.publish("curated", "payments", payments)
    ctx.publish("gold", "payment_transactions", payment_transactions(payments.lazy()).collect())
