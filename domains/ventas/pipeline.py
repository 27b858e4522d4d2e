"""Ventas pipeline (Polars): curated customers, orders and refunds; gold daily_revenue."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from lakehouse.context import DomainContext
from lakehouse.privacy import mask
from lakehouse.reference import CURRENCIES, FX_PER_USD

UTC_TS = pl.Datetime("us", "UTC")


def first_arrival(lf: pl.LazyFrame, key: str) -> pl.LazyFrame:
    """Keep the first delivered copy of every key (source systems resend records)."""
    return lf.sort("ingested_at", key).unique(subset=[key], keep="first", maintain_order=True)


def curate_customers(raw: pl.LazyFrame) -> pl.LazyFrame:
    """One row per customer with PII masked (salted tokens still join across domains)."""
    return first_arrival(raw, "customer_id").select(
        "customer_id",
        mask("name").alias("name_token"),
        mask("email").alias("email_token"),
        mask("phone").alias("phone_token"),
        pl.col("region").str.strip_chars().str.to_uppercase(),
        "signup_ts",
        "ingested_at",
    )


def curate_orders(raw: pl.LazyFrame, customers: pl.LazyFrame) -> pl.LazyFrame:
    """Valid, deduplicated orders with a conformed currency and a USD amount."""
    fx = pl.LazyFrame({"currency": list(FX_PER_USD), "fx": list(FX_PER_USD.values())})
    return (
        first_arrival(raw, "order_id")
        .with_columns(pl.col("currency").str.strip_chars().str.to_uppercase())
        .filter(
            pl.col("customer_id").is_not_null()
            & pl.col("amount").is_not_null()
            & (pl.col("amount") >= 0)
            & pl.col("currency").is_in(CURRENCIES)
        )
        .join(customers.select("customer_id"), on="customer_id", how="semi")
        .join(fx, on="currency", how="left")
        .with_columns(amount_usd=(pl.col("amount") / pl.col("fx")).round(2))
        .select(
            "order_id",
            "customer_id",
            "order_ts",
            "ingested_at",
            "region",
            "currency",
            "payment_method",
            "basket_size",
            "amount",
            "amount_usd",
            "status",
        )
    )


def curate_refunds(raw: pl.LazyFrame, orders: pl.LazyFrame) -> pl.LazyFrame:
    """Valid refunds of known orders, in USD, carrying the order's region."""
    return (
        first_arrival(raw, "refund_id")
        .filter(pl.col("order_id").is_not_null() & (pl.col("amount") >= 0))
        .join(orders.select("order_id", "region", "currency"), on="order_id", how="inner")
        .with_columns(
            amount_usd=(
                pl.col("amount") / pl.col("currency").replace_strict(FX_PER_USD, default=None)
            ).round(2)
        )
        .select("refund_id", "order_id", "customer_id", "refund_ts", "ingested_at", "region",
                "amount", "amount_usd", "reason")
    )  # fmt: skip


def daily_revenue(orders: pl.LazyFrame, refunds: pl.LazyFrame, at: datetime) -> pl.LazyFrame:
    """Revenue per day and region in USD: gross of completed orders, net of refunds."""
    sales = (
        orders.filter(pl.col("status") == "completed")
        .group_by(date=pl.col("order_ts").dt.date(), region="region")
        .agg(revenue_gross=pl.col("amount_usd").sum(), transactions_count=pl.len())
    )
    back = refunds.group_by(date=pl.col("refund_ts").dt.date(), region="region").agg(
        refunded=pl.col("amount_usd").sum(), refunds_count=pl.len()
    )
    return (
        sales.join(back, on=["date", "region"], how="full", coalesce=True)
        .with_columns(
            pl.col("revenue_gross", "refunded").fill_null(0.0),
            pl.col("transactions_count", "refunds_count").fill_null(0).cast(pl.Int64),
        )
        .select(
            "date",
            "region",
            pl.col("revenue_gross").round(2),
            (pl.col("revenue_gross") - pl.col("refunded")).round(2).alias("revenue_net"),
            "transactions_count",
            "refunds_count",
            pl.lit("USD").alias("currency"),
            pl.lit(at).cast(UTC_TS).alias("calculated_at"),
        )
        .sort("date", "region")
    )


def run(ctx: DomainContext) -> None:
    """Build ventas' curated tables and its daily_revenue product."""
    customers = curate_customers(ctx.raw("customers")).collect()
    ctx.publish("curated", "customers", customers)
    orders = curate_orders(ctx.raw("orders"), customers.lazy()).collect()
    ctx.publish("curated", "orders", orders)
    refunds = curate_refunds(ctx.raw("refunds"), orders.lazy()).collect()
    ctx.publish("curated", "refunds", refunds)
    ctx.publish(
        "gold", "daily_revenue", daily_revenue(orders.lazy(), refunds.lazy(), ctx.run_at).collect()
    )
