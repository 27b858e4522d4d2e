"""Finanzas pipeline (Polars).

curated: payments and chargebacks, incremental from raw. A payment needs its order in
ventas.customer_transaction_history: until the order is there it waits in quarantine and is
retried every run (payments of orders ventas quarantined stay there, and are what
accounting_reports calls unmatched). Dirty payments are repaired where the order proves the fix:
a missing amount is the order's amount, a flipped sign is undone when the absolute value is the
order's amount, a missing status is derived from the order and its other attempts, and a payment
pointing at an order id ventas has never seen is matched to the customer's only order with the
same amount and currency placed just before it (cash application). Everything repaired is logged.

gold: payment_transactions, fraud_scores and accounting_reports, recomputed only for the orders,
customer-days and day-regions that new curated rows, new quarantine entries or new ventas rows
touch. Revenue is booked on the order's day and region, so it reconciles with ventas.daily_revenue.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from lakehouse import storage
from lakehouse.context import CHECK_PREFIX, DomainContext
from lakehouse.quality import Rule
from lakehouse.reference import CURRENCIES, FX_PER_USD

TS = pl.Datetime("us", "UTC")
HISTORY = "ventas.customer_transaction_history"
DAILY_REVENUE = "ventas.daily_revenue"
STATUSES = ("succeeded", "failed")
REMATCH_WINDOW = timedelta(minutes=10)  # a payment follows its order within seconds
CENT = 0.005
FRAUD_RISK = 0.7  # max risk score above which a customer-day is flagged
CHARGEBACK_DAYS = 90
FX = pl.col("currency").replace_strict(FX_PER_USD, default=None, return_dtype=pl.Float64)

KNOWN = CHECK_PREFIX + "known"  # order_id is an order ventas has
MATCH = CHECK_PREFIX + "match"  # order found for a payment whose order_id ventas never saw
ORDER = CHECK_PREFIX + "order"  # the order the payment settles: its own or the matched one
ORDER_AMOUNT = CHECK_PREFIX + "order_amount"
ORDER_CURRENCY = CHECK_PREFIX + "order_currency"

PAYMENT_COLUMNS = (
    "payment_id", "order_id", "customer_id", "attempt", "amount", "currency", "amount_usd",
    "method", "status", "failure_reason", "risk_score", "payment_ts", "ingested_at",
)  # fmt: skip
NO_CHARGEBACKS = {"customer_id": pl.Int64, "order_id": pl.Int64, "amount_usd": pl.Float64,
                  "chargeback_ts": TS}  # fmt: skip
NO_UNMATCHED = {"customer_id": pl.Int64, "payment_ts": TS, "amount_usd": pl.Float64,
                "region": pl.String}  # fmt: skip
CHARGEBACK_COLUMNS = (
    "chargeback_id", "payment_id", "order_id", "customer_id", "amount", "currency", "amount_usd",
    "chargeback_ts", "reason", "ingested_at",
)  # fmt: skip


def _conform_currency(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Trim and upper-case currency codes, keeping the code as delivered in currency_raw (rows
    retried from quarantine already carry it)."""
    delivered = (
        pl.coalesce("currency_raw", "currency")
        if "currency_raw" in raw.collect_schema().names()
        else pl.col("currency")
    )
    return raw.with_columns(
        currency_raw=delivered, currency=pl.col("currency").str.strip_chars().str.to_uppercase()
    )


def _amount_matches(amount: pl.Expr) -> pl.Expr:
    return ((amount.abs() - pl.col(ORDER_AMOUNT)).abs() < CENT) & (
        pl.col("currency") == pl.col(ORDER_CURRENCY)
    )


# ---------------------------------------------------------------- curated
def match_orders(payments: pl.LazyFrame, orders: pl.LazyFrame) -> pl.LazyFrame:
    """Payment id -> order id for payments whose order_id is unknown but whose customer has
    exactly one order with the same amount and currency placed up to REMATCH_WINDOW before."""
    candidates = payments.filter(~pl.col(KNOWN) & pl.col("amount").is_not_null()).select(
        "payment_id", "customer_id", "amount", "currency", "payment_ts"
    )
    return (
        candidates.join(
            orders.select(
                "customer_id",
                "order_ts",
                match="order_id",
                o_amount="amount",
                o_currency="currency",
            ),
            on="customer_id",
        )
        .filter(
            ((pl.col("amount").abs() - pl.col("o_amount")).abs() < CENT)
            & (pl.col("currency") == pl.col("o_currency"))
            & (pl.col("payment_ts") >= pl.col("order_ts"))
            & (pl.col("payment_ts") <= pl.col("order_ts") + REMATCH_WINDOW)
        )
        .group_by("payment_id")
        .agg(pl.col("match").unique())
        .filter(pl.col("match").list.len() == 1)
        .select("payment_id", pl.col("match").list.first().alias(MATCH))
    )


def prepare_payments(raw: pl.LazyFrame, orders: pl.LazyFrame) -> pl.LazyFrame:
    """Conform currency and attach the order each payment settles (its own order when ventas
    has it, else a unique match), with that order's amount and currency for the rules."""
    ref = orders.select("order_id", "amount", "currency")
    flagged = (
        _conform_currency(raw)
        .join(ref.select("order_id", pl.lit(True).alias(KNOWN)), on="order_id", how="left")
        .with_columns(pl.col(KNOWN).fill_null(False))
    )
    matched = flagged.join(match_orders(flagged, orders), on="payment_id", how="left")
    return matched.with_columns(
        pl.when(pl.col(KNOWN)).then(pl.col("order_id")).otherwise(pl.col(MATCH)).alias(ORDER)
    ).join(
        ref.select(
            pl.col("order_id").alias(ORDER),
            pl.col("amount").alias(ORDER_AMOUNT),
            pl.col("currency").alias(ORDER_CURRENCY),
        ),
        on=ORDER,
        how="left",
    )


_settles = pl.col(ORDER).is_not_null()
PAYMENT_RULES = [
    Rule("not_null:order_id", pl.col("order_id").is_not_null(), "order id is missing"),
    Rule(
        "unknown_order",
        pl.col("order_id").is_null() | _settles,
        "order id is not (yet) an order in ventas.customer_transaction_history",
    ),
    Rule(
        "valid_currency",
        pl.col("currency").is_in(CURRENCIES).fill_null(False),
        "currency is not a known code",
    ),
    Rule(
        "negative_amount",
        (pl.col("amount") >= 0).fill_null(True) | ~_settles | _amount_matches(pl.col("amount")),
        "amount is negative and its absolute value is not the order's amount",
    ),
    Rule(
        "valid_status",
        pl.col("status").is_in(STATUSES).fill_null(True),
        "status is neither succeeded nor failed",
    ),
    Rule(
        "valid_risk_score",
        pl.col("risk_score").is_between(0, 1).fill_null(False),
        "risk score is missing or outside 0..1",
    ),
    Rule("not_null:payment_ts", pl.col("payment_ts").is_not_null(), "payment time is missing"),
    Rule("valid_attempt", (pl.col("attempt") >= 1).fill_null(False), "attempt is missing or < 1"),
]
PAYMENT_REPAIRS = [
    Rule(
        "malformed_currency",
        pl.col("currency_raw") == pl.col("currency"),
        "currency code had padding or lower case; conformed",
    ),
    Rule(
        "missing_amount",
        pl.col("amount").is_not_null(),
        "amount was missing; took the order's amount from ventas.customer_transaction_history",
    ),
    Rule(
        "flipped_amount",
        (pl.col("amount") >= 0).fill_null(True),
        "amount was negative; its absolute value is the order's amount, kept that",
    ),
    Rule(
        "missing_status",
        pl.col("status").is_not_null(),
        "status was missing; payment_transactions derives it from the order's status and the "
        "order's other attempts",
    ),
    Rule(
        "rematched_order",
        pl.col(KNOWN),
        "order id is unknown to ventas; matched to the customer's only order with the same "
        "amount and currency placed up to 10 minutes before the payment",
    ),
]


def finish_payments(good: pl.LazyFrame) -> pl.LazyFrame:
    """Curated payment columns: the settled order, repaired amount and the amount in USD."""
    return (
        good.with_columns(
            order_id=pl.col(ORDER),
            amount=pl.coalesce(pl.col("amount").abs(), pl.col(ORDER_AMOUNT)),
        )
        .with_columns(amount_usd=(pl.col("amount") / FX).round(2))
        .select(PAYMENT_COLUMNS)
    )


def prepare_chargebacks(raw: pl.LazyFrame, payments: pl.LazyFrame) -> pl.LazyFrame:
    """Conform currency and flag chargebacks of payments finanzas does not have (yet)."""
    known = payments.select("payment_id", pl.lit(True).alias(KNOWN))
    return (
        _conform_currency(raw)
        .join(known, on="payment_id", how="left")
        .with_columns(pl.col(KNOWN).fill_null(False))
    )


CHARGEBACK_RULES = [
    Rule("not_null:payment_id", pl.col("payment_id").is_not_null(), "payment id is missing"),
    Rule(
        "unknown_payment",
        pl.col("payment_id").is_null() | pl.col(KNOWN),
        "payment id is not (yet) a curated payment",
    ),
    Rule("not_null:amount", pl.col("amount").is_not_null(), "amount is missing"),
    Rule("non_negative:amount", (pl.col("amount") >= 0).fill_null(True), "amount is negative"),
    Rule(
        "valid_currency",
        pl.col("currency").is_in(CURRENCIES).fill_null(False),
        "currency is not a known code",
    ),
    Rule("not_null:chargeback_ts", pl.col("chargeback_ts").is_not_null(), "time is missing"),
]
CHARGEBACK_REPAIRS = [
    Rule(
        "malformed_currency",
        pl.col("currency_raw") == pl.col("currency"),
        "currency code had padding or lower case; conformed",
    )
]


def finish_chargebacks(good: pl.LazyFrame, payments: pl.LazyFrame) -> pl.LazyFrame:
    """Curated chargeback columns, with the order of the payment and the amount in USD."""
    return (
        good.drop("order_id", strict=False)
        .join(payments.select("payment_id", "order_id"), on="payment_id", how="left")
        .with_columns(amount_usd=(pl.col("amount") / FX).round(2))
        .select(CHARGEBACK_COLUMNS)
    )


# ---------------------------------------------------------------- gold
def settle(payments: pl.LazyFrame, orders: pl.LazyFrame) -> pl.LazyFrame:
    """Payments with a settlement status for every attempt. A missing status is derived: every
    attempt of a cancelled order failed; a completed order was paid by its latest attempt unless
    another attempt says it succeeded (customers retry only after a failure)."""
    per_order = pl.col("order_id")
    paid_elsewhere = (pl.col("status") == "succeeded").fill_null(False).sum().over(per_order) > 0
    latest = pl.col("attempt") == pl.col("attempt").max().over(per_order)
    derived = (
        pl.when(pl.col(CHECK_PREFIX + "order_status") == "cancelled")
        .then(pl.lit("failed"))
        .when(latest & ~paid_elsewhere)
        .then(pl.lit("succeeded"))
        .otherwise(pl.lit("failed"))
    )
    status = orders.select("order_id", pl.col("status").alias(CHECK_PREFIX + "order_status"))
    return (
        payments.join(status, on="order_id", how="left")
        .with_columns(status=pl.coalesce("status", derived))
        .drop(CHECK_PREFIX + "order_status")
    )


def payment_transactions(settled: pl.LazyFrame, at: datetime) -> pl.LazyFrame:
    """One row per payment attempt: amount, method, settlement status and risk score."""
    return settled.select(
        pl.col("payment_id").cast(pl.Int64),
        pl.col("order_id").cast(pl.Int64),
        pl.col("customer_id").cast(pl.Int64),
        pl.col("attempt").cast(pl.Int8),
        pl.col("amount").cast(pl.Float64),
        "currency",
        pl.col("amount_usd").cast(pl.Float64),
        "method",
        "status",
        pl.when(pl.col("status") == "failed")
        .then(pl.col("failure_reason"))
        .alias("failure_reason"),
        pl.col("risk_score").cast(pl.Float64),
        pl.col("payment_ts").cast(TS),
        payment_date=pl.col("payment_ts").dt.date(),
        calculated_at=pl.lit(at, dtype=TS),
    ).sort("payment_id")


def fraud_scores(
    payments: pl.LazyFrame, chargebacks: pl.LazyFrame, at: datetime, risk: float = FRAUD_RISK
) -> pl.LazyFrame:
    """Risk per customer and payment day: attempts, mean and max risk score, chargebacks in the
    90 days up to that day; flagged when the max risk exceeds `risk` or any chargeback exists."""
    daily = payments.group_by("customer_id", date=pl.col("payment_ts").dt.date()).agg(
        payments_count=pl.len().cast(pl.Int64),
        avg_risk_score=pl.col("risk_score").mean().round(4),
        max_risk_score=pl.col("risk_score").max(),
    )
    back = chargebacks.select("customer_id", cb_date=pl.col("chargeback_ts").dt.date())
    counted = (
        daily.select("customer_id", "date")
        .join(back, on="customer_id")
        .filter(
            (pl.col("cb_date") <= pl.col("date"))
            & (pl.col("cb_date") > pl.col("date") - pl.duration(days=CHARGEBACK_DAYS))
        )
        .group_by("customer_id", "date")
        .agg(chargebacks_90d=pl.len().cast(pl.Int64))
    )
    return (
        daily.join(counted, on=["customer_id", "date"], how="left")
        .with_columns(pl.col("chargebacks_90d").fill_null(0))
        .select(
            pl.col("customer_id").cast(pl.Int64),
            "date",
            "payments_count",
            pl.col("avg_risk_score").cast(pl.Float64),
            pl.col("max_risk_score").cast(pl.Float64),
            "chargebacks_90d",
            fraud_flag=(pl.col("max_risk_score") > risk) | (pl.col("chargebacks_90d") > 0),
            calculated_at=pl.lit(at, dtype=TS),
        )
        .sort("customer_id", "date")
    )


def difference_pct(ours: pl.Expr, theirs: pl.Expr) -> pl.Expr:
    """100 * (ours - theirs) / theirs; 0 when both are 0 and 100 when only theirs is 0."""
    return (
        pl.when(theirs != 0)
        .then(100 * (ours - theirs) / theirs)
        .when(ours == 0)
        .then(0.0)
        .otherwise(100.0)
        .round(4)
    )


def accounting_reports(
    transactions: pl.LazyFrame,
    orders: pl.LazyFrame,
    chargebacks: pl.LazyFrame,
    unmatched: pl.LazyFrame,
    revenue: pl.LazyFrame,
    at: datetime,
) -> pl.LazyFrame:
    """Per day and region in USD: succeeded payments of completed orders (booked on the order's
    day and region), payment counts, chargebacks (on their own day, the order's region), ventas'
    gross revenue, the difference in percent, and succeeded payments ventas has no order for
    (`unmatched`: customer_id, payment_ts, amount_usd, region)."""
    book = orders.select("order_id", "region", date="order_date", order_status="status")
    paid = (
        transactions.join(book, on="order_id")
        .group_by("date", "region")
        .agg(
            revenue_gross_usd=pl.col("amount_usd")
            .filter((pl.col("status") == "succeeded") & (pl.col("order_status") == "completed"))
            .sum(),
            payments_count=pl.len().cast(pl.Int64),
            failed_payments_count=(pl.col("status") == "failed").sum().cast(pl.Int64),
        )
    )
    back = (
        chargebacks.join(book.select("order_id", "region"), on="order_id")
        .group_by("region", date=pl.col("chargeback_ts").dt.date())
        .agg(chargebacks_usd=pl.col("amount_usd").sum())
    )
    loose = unmatched.group_by("region", date=pl.col("payment_ts").dt.date()).agg(
        unmatched_payments_usd=pl.col("amount_usd").sum()
    )
    sales = revenue.select("date", "region", ventas_revenue_gross_usd="revenue_gross")
    keys = ["date", "region"]
    return (
        paid.join(back, on=keys, how="full", coalesce=True)
        .join(loose, on=keys, how="full", coalesce=True)
        .join(sales, on=keys, how="full", coalesce=True)
        .with_columns(
            pl.col(
                "revenue_gross_usd",
                "chargebacks_usd",
                "unmatched_payments_usd",
                "ventas_revenue_gross_usd",
            )
            .fill_null(0.0)
            .round(2),
            pl.col("payments_count", "failed_payments_count").fill_null(0),
        )
        .select(
            "date",
            "region",
            currency=pl.lit("USD"),
            revenue_gross_usd=pl.col("revenue_gross_usd").cast(pl.Float64),
            chargebacks_usd=pl.col("chargebacks_usd").cast(pl.Float64),
            payments_count=pl.col("payments_count").cast(pl.Int64),
            failed_payments_count=pl.col("failed_payments_count").cast(pl.Int64),
            ventas_revenue_gross_usd=pl.col("ventas_revenue_gross_usd").cast(pl.Float64),
            difference_pct=difference_pct(
                pl.col("revenue_gross_usd"), pl.col("ventas_revenue_gross_usd")
            ),
            unmatched_payments_usd=pl.col("unmatched_payments_usd").cast(pl.Float64),
            calculated_at=pl.lit(at, dtype=TS),
        )
        .sort(keys)
    )


# ---------------------------------------------------------------- run
def _orders(ctx: DomainContext) -> pl.LazyFrame:
    """The columns of ventas' transaction history that finanzas reconciles against."""
    return ctx.product(HISTORY).select(
        "order_id", "customer_id", "order_ts", "order_date", "region", "currency", "amount",
        "amount_usd", "status", "calculated_at",
    )  # fmt: skip


def run(ctx: DomainContext) -> None:
    """Bring finanzas' curated tables up to date, then refresh the products they touch."""
    if ctx.has("raw", "payments"):
        ctx.curate(
            "payments",
            source="payments",
            key=["payment_id"],
            rules=PAYMENT_RULES,
            prepare=lambda raw: prepare_payments(raw, _orders(ctx)),
            repairs=PAYMENT_REPAIRS,
            finish=finish_payments,
            retry_rules=["unknown_order"],
        )
    if not ctx.has("curated", "payments"):
        return
    if ctx.has("raw", "chargebacks"):
        ctx.curate(
            "chargebacks",
            source="chargebacks",
            key=["chargeback_id"],
            rules=CHARGEBACK_RULES,
            prepare=lambda raw: prepare_chargebacks(raw, ctx.curated("payments")),
            repairs=CHARGEBACK_REPAIRS,
            finish=lambda good: finish_chargebacks(good, ctx.curated("payments")),
            retry_rules=["unknown_payment"],
        )
    with ctx.step("gold.payment_transactions"):
        _publish_transactions(ctx, _orders(ctx))
    with ctx.step("gold.fraud_scores"):
        _publish_fraud(ctx)
    with ctx.step("gold.accounting_reports"):
        _publish_accounting(ctx, _orders(ctx))


def _chargebacks(
    ctx: DomainContext, product: str
) -> tuple[pl.LazyFrame, pl.LazyFrame, datetime | None]:
    """(all, not yet folded into product, new watermark) of curated chargebacks, empty if none."""
    if ctx.has("curated", "chargebacks"):
        return ctx.changes("chargebacks", product)
    empty = pl.LazyFrame(schema=NO_CHARGEBACKS)
    return empty, empty, None


def _product_changes(
    ctx: DomainContext, frame: pl.LazyFrame, product: str, source: str
) -> tuple[pl.LazyFrame, datetime | None]:
    """Rows of another product (re)computed since `product` last read it, and the new mark."""
    mark = ctx.watermarks("gold", product).get(source)
    newest = frame.select(pl.col("calculated_at").max()).collect().item()
    return ctx.since(frame, mark, "calculated_at"), newest


def _publish_transactions(ctx: DomainContext, orders: pl.LazyFrame) -> None:
    payments, new, mark = ctx.changes("payments", "payment_transactions")
    touched = new.select("order_id").unique().collect()
    if touched.is_empty():
        return
    settled = settle(
        payments.join(touched.lazy(), on="order_id", how="semi"),
        orders.join(touched.lazy(), on="order_id", how="semi"),
    )
    batch = payment_transactions(settled, ctx.run_at).collect()
    ctx.publish_product("payment_transactions", batch, watermarks={"curated/payments": mark})


def _publish_fraud(ctx: DomainContext) -> None:
    payments, new, mark = ctx.changes("payments", "fraud_scores")
    chargebacks, new_backs, backs_mark = _chargebacks(ctx, "fraud_scores")
    days, window = pl.col("payment_ts").dt.date(), pl.duration(days=CHARGEBACK_DAYS)
    hit = new_backs.select("customer_id", since=pl.col("chargeback_ts").dt.date())
    keys = pl.concat(
        [
            new.select("customer_id", date=days),
            payments.join(hit, on="customer_id")
            .filter(days.is_between(pl.col("since"), pl.col("since") + window, closed="left"))
            .select("customer_id", date=days),
        ]
    ).unique()
    keys = keys.collect()
    if keys.is_empty():
        return
    customers = keys.select("customer_id").unique().lazy()
    batch = (
        fraud_scores(
            payments.join(customers, on="customer_id", how="semi"),
            chargebacks.join(customers, on="customer_id", how="semi"),
            ctx.run_at,
        )
        .join(keys.lazy(), on=["customer_id", "date"], how="semi")
        .collect()
    )
    marks = {"curated/payments": mark, "curated/chargebacks": backs_mark}
    ctx.publish_product("fraud_scores", batch, watermarks=marks)


def unmatched_payments(pending: pl.DataFrame | None, orders: pl.LazyFrame) -> pl.LazyFrame:
    """Succeeded payments waiting for an order ventas does not have, in USD, placed in the
    customer's region (from the customer's latest order ventas has; dropped when none)."""
    if pending is None or pending.is_empty():
        return pl.LazyFrame(schema=NO_UNMATCHED)
    return (
        _conform_currency(pending.lazy())
        .filter(pl.col("status") == "succeeded")
        .unique("payment_id")
        .select(
            "customer_id",
            "payment_ts",
            amount_usd=(pl.col("amount").abs() / FX).round(2).fill_null(0.0),
        )
        .join(_home_regions(orders), on="customer_id")
    )


def _home_regions(orders: pl.LazyFrame) -> pl.LazyFrame:
    """Each customer's region, from their latest order."""
    return orders.group_by("customer_id").agg(pl.col("region").sort_by("order_ts").last())


def _quarantine_changes(ctx: DomainContext) -> tuple[pl.LazyFrame, datetime | None]:
    """Payments that entered or left the waiting room since accounting_reports last ran."""
    path = ctx.path("quarantine", "payments")
    schema = {"customer_id": pl.Int64, "payment_ts": TS}
    if not storage.exists(path):
        return pl.LazyFrame(schema=schema), None
    rows = storage.scan(path).filter(pl.col("_rule") == "unknown_order")
    moved = pl.max_horizontal(pl.col("_quarantined_at"), pl.col("_resolved_at"))
    mark = ctx.watermarks("gold", "accounting_reports").get("quarantine/payments")
    newest = rows.select(moved.max()).collect().item()
    recent = rows if mark is None else rows.filter(moved > pl.lit(mark, dtype=TS))
    return recent.select(*schema), newest


def _publish_accounting(ctx: DomainContext, orders: pl.LazyFrame) -> None:
    product = "accounting_reports"
    if not ctx.has("gold", "payment_transactions"):
        return
    transactions = ctx.gold("payment_transactions")
    new_tx, tx_mark = _product_changes(ctx, transactions, product, "gold/payment_transactions")
    chargebacks, new_backs, backs_mark = _chargebacks(ctx, product)
    revenue = ctx.product(DAILY_REVENUE)
    new_revenue, revenue_mark = _product_changes(ctx, revenue, product, DAILY_REVENUE)
    moved, moved_mark = _quarantine_changes(ctx)
    book = orders.select("order_id", "region", date="order_date")
    keys = (
        pl.concat(
            [
                new_tx.join(book, on="order_id").select("date", "region"),
                new_backs.join(book, on="order_id").select(
                    pl.col("chargeback_ts").dt.date().alias("date"), "region"
                ),
                new_revenue.select("date", "region"),
                moved.join(_home_regions(orders), on="customer_id").select(
                    pl.col("payment_ts").dt.date().alias("date"), "region"
                ),
            ]
        )
        .unique()
        .collect()
    )
    if keys.is_empty():
        return
    dates = keys.select("date").unique()
    on_days = book.join(dates.lazy(), on="date", how="semi").select("order_id")
    batch = (
        accounting_reports(
            transactions.join(on_days, on="order_id", how="semi"),
            orders,
            chargebacks.filter(pl.col("chargeback_ts").dt.date().is_in(dates["date"].implode())),
            unmatched_payments(ctx.pending("payments", ["unknown_order"]), orders),
            revenue.join(dates.lazy(), on="date", how="semi"),
            ctx.run_at,
        )
        .join(keys.lazy(), on=["date", "region"], how="semi")
        .collect()
    )
    marks = {
        "gold/payment_transactions": tx_mark,
        "curated/chargebacks": backs_mark,
        DAILY_REVENUE: revenue_mark,
        "quarantine/payments": moved_mark,
    }
    ctx.publish_product(product, batch, watermarks=marks)
