"""Ventas pipeline (Polars).

curated: customers (PII masked), orders, order_lines, refunds, each incremental from raw.
gold: daily_revenue, customer_transaction_history, product_performance, recomputed only for the
dates and orders that new curated rows touch, so late events land on the day they belong to.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from lakehouse.context import CHECK_PREFIX, DomainContext
from lakehouse.privacy import mask
from lakehouse.quality import Rule
from lakehouse.reference import CURRENCIES, FX_PER_USD, REGIONS

TS = pl.Datetime("us", "UTC")
FX = pl.col("currency").replace_strict(FX_PER_USD, default=None, return_dtype=pl.Float64)
KNOWN = CHECK_PREFIX + "known"


def _flag_known(frame: pl.LazyFrame, column: str, ids: pl.LazyFrame) -> pl.LazyFrame:
    """Add a boolean helper column: does `column` reference an existing id?"""
    ref = ids.select(pl.col(column)).unique().with_columns(pl.lit(True).alias(KNOWN))
    return frame.join(ref, on=column, how="left").with_columns(pl.col(KNOWN).fill_null(False))


# ---------------------------------------------------------------- curated
def prepare_customers(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Conform region, flag malformed emails, mask PII with salted tokens (joins still work)."""
    valid_email = pl.col("email").str.contains(r"^[^@\s]+@[^@\s]+\.[a-z]+$")
    return (
        raw.with_columns(
            pl.col("region").str.strip_chars().str.to_uppercase(),
            valid_email.fill_null(False).alias(CHECK_PREFIX + "email_ok"),
        )
        .with_columns(
            pl.when(pl.col(CHECK_PREFIX + "email_ok")).then(pl.col("email")).alias("email"),
        )
        .select(
            "customer_id",
            mask("name").alias("name_token"),
            mask("email").alias("email_token"),
            mask("phone").alias("phone_token"),
            "region",
            "signup_ts",
            "ingested_at",
            "batch_id",
            pl.col(CHECK_PREFIX + "email_ok"),
        )
    )


CUSTOMER_RULES = [
    Rule("not_null:customer_id", pl.col("customer_id").is_not_null(), "customer id is missing"),
    Rule("valid_region", pl.col("region").is_in(REGIONS), "region is not one of the four"),
]
CUSTOMER_REPAIRS = [
    Rule(
        "malformed_email",
        pl.col(CHECK_PREFIX + "email_ok"),
        "email is malformed; kept the customer with no email token",
    )
]


def prepare_orders(raw: pl.LazyFrame, customers: pl.LazyFrame) -> pl.LazyFrame:
    """Conform currency codes and flag orders of customers ventas does not know (yet)."""
    conformed = raw.with_columns(pl.col("currency").str.strip_chars().str.to_uppercase())
    return _flag_known(conformed, "customer_id", customers)


ORDER_RULES = [
    Rule("not_null:customer_id", pl.col("customer_id").is_not_null(), "customer id is missing"),
    Rule("not_null:amount", pl.col("amount").is_not_null(), "amount is missing"),
    Rule("non_negative:amount", pl.col("amount") >= 0, "amount is negative"),
    Rule("valid_currency", pl.col("currency").is_in(CURRENCIES), "currency is not a known code"),
    Rule("unknown_customer", pl.col(KNOWN), "customer id is not (yet) a known customer"),
]
ORDER_REPAIRS = [
    Rule(
        "malformed_currency",
        pl.col("currency_raw") == pl.col("currency"),
        "currency code had padding or lower case; conformed",
    )
]


def finish_orders(good: pl.LazyFrame) -> pl.LazyFrame:
    """Curated order columns, with the amount in USD."""
    return good.with_columns(amount_usd=(pl.col("amount") / FX).round(2)).select(
        "order_id", "customer_id", "order_ts", "ingested_at", "region", "currency",
        "payment_method", "basket_size", "amount", "amount_usd", "status",
    )  # fmt: skip


def prepare_lines(raw: pl.LazyFrame, orders: pl.LazyFrame, catalog: pl.LazyFrame) -> pl.LazyFrame:
    """Flag lines whose order ventas does not know (yet) or whose product the catalog lacks."""
    products = catalog.select("product_id").collect().to_series().implode()
    return _flag_known(raw, "order_id", orders).with_columns(
        pl.col("product_id").is_in(products).fill_null(False).alias(CHECK_PREFIX + "product")
    )


LINE_RULES = [
    Rule("not_null:product_id", pl.col("product_id").is_not_null(), "product id is missing"),
    Rule("not_null:quantity", pl.col("quantity").is_not_null(), "quantity is missing"),
    Rule("non_negative:amount", pl.col("amount") >= 0, "line amount is negative"),
    Rule("unknown_product", pl.col(CHECK_PREFIX + "product"), "product is not in the catalog"),
    Rule("unknown_order", pl.col(KNOWN), "order id is not (yet) a known order"),
]
REFUND_RULES = [
    Rule("not_null:order_id", pl.col("order_id").is_not_null(), "order id is missing"),
    Rule("non_negative:amount", pl.col("amount") >= 0, "refund amount is negative"),
    Rule("unknown_order", pl.col(KNOWN), "order id is not (yet) a known order"),
]


# ---------------------------------------------------------------- gold
ORDERS, REFUNDS = "ventas/curated/orders", "ventas/curated/refunds"
REVENUE_LINEAGE = {
    "date": [(ORDERS, "order_ts"), (REFUNDS, "refund_ts")],
    "region": [(ORDERS, "region"), (REFUNDS, "region")],
    "revenue_gross": [(ORDERS, "amount_usd"), (ORDERS, "status")],
    "revenue_net": [(ORDERS, "amount_usd"), (REFUNDS, "amount_usd")],
    "transactions_count": [(ORDERS, "order_id")],
    "refunds_count": [(REFUNDS, "refund_id")],
}


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
            pl.lit(at).cast(TS).alias("calculated_at"),
        )
        .sort("date", "region")
    )


def transaction_history(orders: pl.LazyFrame, refunds: pl.LazyFrame, at: datetime) -> pl.LazyFrame:
    """Every order with its refund status, for consumers who need order-level data."""
    refunded = refunds.group_by("order_id").agg(refund_amount_usd=pl.col("amount_usd").sum())
    return (
        orders.join(refunded, on="order_id", how="left")
        .with_columns(
            refunded=pl.col("refund_amount_usd").is_not_null(),
            refund_amount_usd=pl.col("refund_amount_usd").fill_null(0.0).round(2),
            order_date=pl.col("order_ts").dt.date(),
            calculated_at=pl.lit(at).cast(TS),
        )
        .select(
            "order_id",
            "customer_id",
            "order_ts",
            "order_date",
            "region",
            "currency",
            "payment_method",
            "basket_size",
            "amount",
            "amount_usd",
            "status",
            "refunded",
            "refund_amount_usd",
            "ingested_at",
            "calculated_at",
        )
        .sort("order_id")
    )


def product_performance(
    lines: pl.LazyFrame, orders: pl.LazyFrame, catalog: pl.LazyFrame, at: datetime
) -> pl.LazyFrame:
    """Units, orders and USD revenue per product and day, over completed orders."""
    done = orders.filter(pl.col("status") == "completed").select(
        "order_id", date=pl.col("order_ts").dt.date()
    )
    return (
        lines.join(done, on="order_id", how="inner")
        .with_columns(revenue_usd=pl.col("amount") / FX)
        .group_by("date", "product_id")
        .agg(
            units_sold=pl.col("quantity").sum().cast(pl.Int64),
            orders_count=pl.col("order_id").n_unique().cast(pl.Int64),
            revenue_usd=pl.col("revenue_usd").sum().round(2),
        )
        .join(catalog.select("product_id", "category"), on="product_id", how="left")
        .select(
            "date",
            "product_id",
            pl.col("category").fill_null("unknown"),
            "units_sold",
            "orders_count",
            "revenue_usd",
            calculated_at=pl.lit(at).cast(TS),
        )
        .sort("date", "product_id")
    )


def _dates(frame: pl.LazyFrame, column: str) -> list:
    return frame.select(pl.col(column).dt.date().unique()).collect().to_series().to_list()


def run(ctx: DomainContext) -> None:
    """Bring ventas' curated tables up to date, then refresh the products they touch."""
    ctx.curate("customers", source="customers", key=["customer_id"], rules=CUSTOMER_RULES,
               prepare=prepare_customers, repairs=CUSTOMER_REPAIRS)  # fmt: skip
    ctx.curate(
        "orders",
        source="orders",
        key=["order_id"],
        rules=ORDER_RULES,
        prepare=lambda raw: prepare_orders(
            raw.with_columns(currency_raw=pl.col("currency")), ctx.curated("customers")
        ),
        repairs=ORDER_REPAIRS,
        finish=finish_orders,
        retry_rules=["unknown_customer"],
    )
    ctx.curate(
        "order_lines",
        source="order_lines",
        key=["line_id"],
        rules=LINE_RULES,
        prepare=lambda raw: prepare_lines(
            raw, ctx.curated("orders"), ctx.product("producto.catalog")
        ),
        retry_rules=["unknown_order", "unknown_product"],
    )
    ctx.curate(
        "refunds",
        source="refunds",
        key=["refund_id"],
        rules=REFUND_RULES,
        prepare=lambda raw: _flag_known(raw, "order_id", ctx.curated("orders")),
        finish=lambda good: (
            good.join(ctx.curated("orders").select("order_id", "region"), on="order_id")
            .with_columns(amount_usd=(pl.col("amount") / FX).round(2))
            .select(
                "refund_id",
                "order_id",
                "customer_id",
                "refund_ts",
                "ingested_at",
                "region",
                "amount",
                "currency",
                "amount_usd",
                "reason",
            )
        ),
        retry_rules=["unknown_order"],
    )
    with ctx.step("gold.daily_revenue"):
        _publish_revenue(ctx)
    with ctx.step("gold.customer_transaction_history"):
        _publish_history(ctx)
    with ctx.step("gold.product_performance"):
        _publish_performance(ctx, ctx.product("producto.catalog"))


def _publish_revenue(ctx: DomainContext) -> None:
    orders, new_orders, orders_mark = ctx.changes("orders", "daily_revenue")
    refunds, new_refunds, refunds_mark = ctx.changes("refunds", "daily_revenue")
    dates = sorted(set(_dates(new_orders, "order_ts")) | set(_dates(new_refunds, "refund_ts")))
    if not dates:
        return
    days = pl.Series(dates, dtype=pl.Date).implode()
    batch = daily_revenue(
        orders.filter(pl.col("order_ts").dt.date().is_in(days)),
        refunds.filter(pl.col("refund_ts").dt.date().is_in(days)),
        ctx.run_at,
    ).collect()
    marks = {"curated/orders": orders_mark, "curated/refunds": refunds_mark}
    ctx.publish_product("daily_revenue", batch, watermarks=marks, column_lineage=REVENUE_LINEAGE)


def _publish_history(ctx: DomainContext) -> None:
    orders, new_orders, orders_mark = ctx.changes("orders", "customer_transaction_history")
    refunds, new_refunds, refunds_mark = ctx.changes("refunds", "customer_transaction_history")
    touched = pl.concat([new_orders.select("order_id"), new_refunds.select("order_id")])
    ids = touched.unique().collect().to_series()
    if ids.is_empty():
        return
    batch = transaction_history(
        orders.filter(pl.col("order_id").is_in(ids.implode())),
        refunds.filter(pl.col("order_id").is_in(ids.implode())),
        ctx.run_at,
    ).collect()
    marks = {"curated/orders": orders_mark, "curated/refunds": refunds_mark}
    ctx.publish_product("customer_transaction_history", batch, watermarks=marks)


def _publish_performance(ctx: DomainContext, catalog: pl.LazyFrame) -> None:
    orders, new_orders, orders_mark = ctx.changes("orders", "product_performance")
    lines, new_lines, lines_mark = ctx.changes("order_lines", "product_performance")
    touched = pl.concat([new_lines.select("order_id"), new_orders.select("order_id")]).unique()
    dates = _dates(orders.join(touched, on="order_id", how="semi"), "order_ts")
    if not dates:
        return
    days = pl.Series(dates, dtype=pl.Date).implode()
    day_orders = orders.filter(pl.col("order_ts").dt.date().is_in(days))
    day_lines = lines.join(day_orders.select("order_id"), on="order_id", how="semi")
    batch = product_performance(day_lines, day_orders, catalog, ctx.run_at).collect()
    marks = {"curated/orders": orders_mark, "curated/order_lines": lines_mark}
    ctx.publish_product("product_performance", batch, watermarks=marks)
