"""Ventas, producto and logistica transformations on tiny inline frames."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from domains.logistica import pipeline as logistica
from domains.producto import pipeline as producto
from domains.ventas import pipeline as ventas
from lakehouse import duck
from lakehouse.quality import split

AT = datetime(2026, 3, 1, tzinfo=UTC)


def ts(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 2, day, hour, tzinfo=UTC)


def test_daily_revenue_is_gross_of_completed_and_net_of_refunds_by_refund_day() -> None:
    orders = pl.LazyFrame({
        "order_id": [1, 2, 3, 4], "order_ts": [ts(1), ts(1), ts(1), ts(2)],
        "region": ["EU", "EU", "EU", "NA"], "amount_usd": [100.0, 50.0, 70.0, 30.0],
        "status": ["completed", "completed", "cancelled", "completed"],
    })  # fmt: skip
    refunds = pl.LazyFrame({
        "refund_id": [9], "refund_ts": [ts(2)], "region": ["EU"], "amount_usd": [50.0],
    })  # fmt: skip
    out = ventas.daily_revenue(orders, refunds, AT).collect()
    rows = {(r["date"], r["region"]): r for r in out.iter_rows(named=True)}
    assert rows[(date(2026, 2, 1), "EU")]["revenue_gross"] == 150.0
    assert rows[(date(2026, 2, 1), "EU")]["transactions_count"] == 2  # cancelled excluded
    assert rows[(date(2026, 2, 1), "EU")]["revenue_net"] == 150.0
    refund_day = rows[(date(2026, 2, 2), "EU")]  # a day with a refund and no sales
    assert (refund_day["revenue_gross"], refund_day["revenue_net"]) == (0.0, -50.0)
    assert refund_day["refunds_count"] == 1
    assert out["currency"].unique().to_list() == ["USD"]


def test_transaction_history_marks_refunded_orders() -> None:
    orders = pl.LazyFrame({
        "order_id": [1, 2], "customer_id": [7, 8], "order_ts": [ts(1), ts(3)],
        "region": ["EU", "NA"], "currency": ["EUR", "USD"], "payment_method": ["card", "card"],
        "basket_size": [1, 2], "amount": [92.0, 10.0], "amount_usd": [100.0, 10.0],
        "status": ["completed", "completed"], "ingested_at": [ts(2, 2), ts(4, 2)],
    })  # fmt: skip
    refunds = pl.LazyFrame({"order_id": [1, 1], "amount_usd": [60.0, 40.0]})
    out = ventas.transaction_history(orders, refunds, AT).collect()
    assert out["refunded"].to_list() == [True, False]
    assert out["refund_amount_usd"].to_list() == [100.0, 0.0]
    assert out["order_date"].to_list() == [date(2026, 2, 1), date(2026, 2, 3)]


def test_customers_are_masked_and_malformed_emails_flagged() -> None:
    raw = pl.LazyFrame({
        "customer_id": [1, 2], "name": ["Ana Silva", "Liam Kim"],
        "email": ["ana.silva1@example.com", "liam.kim2 at example.com"],
        "phone": ["+1-555-0000001", "+2-555-0000002"], "region": [" latam ", "EU"],
        "signup_ts": [ts(1), ts(1)], "ingested_at": [ts(2), ts(2)], "batch_id": ["b", "b"],
    })  # fmt: skip
    out = ventas.prepare_customers(raw).collect()
    assert out["region"].to_list() == ["LATAM", "EU"]
    assert out["email_token"][0] is not None and out["email_token"][1] is None
    assert "ana" not in " ".join(str(v) for v in out.row(0))
    _, flagged = split(out, ventas.CUSTOMER_REPAIRS)
    assert flagged["customer_id"].to_list() == [2]
    assert flagged["_rule"].to_list() == ["malformed_email"]


def test_order_rules_name_each_problem() -> None:
    raw = pl.LazyFrame({
        "order_id": [1, 2, 3, 4, 5], "customer_id": [7, None, 7, 7, 99],
        "amount": [10.0, 10.0, -3.0, 10.0, 10.0], "currency": ["USD", "USD", "USD", " eur ", "XXX"],
    })  # fmt: skip
    customers = pl.LazyFrame({"customer_id": [7]})
    good, bad = split(ventas.prepare_orders(raw, customers).collect(), ventas.ORDER_RULES)
    assert sorted(good["order_id"].to_list()) == [1, 4]  # a join: row order is not kept
    assert good.filter(pl.col("order_id") == 4)["currency"].item() == "EUR"  # repaired
    reasons = dict(zip(bad["order_id"], bad["_rule"], strict=True))
    assert reasons == {2: "not_null:customer_id", 3: "non_negative:amount", 5: "valid_currency"}


def test_pricing_history_intervals_close_at_the_next_change() -> None:
    products = pl.LazyFrame({
        "product_id": [1], "launch_date": [date(2025, 1, 1)], "list_price_usd": [10.0],
    })  # fmt: skip
    prices = pl.LazyFrame({
        "product_id": [1, 1], "effective_ts": [ts(10), ts(5)], "price_usd": [12.0, 11.0],
        "reason": ["category_repricing", "adjustment"],
    })  # fmt: skip
    out = producto.pricing_history(products, prices, AT).collect()
    assert out["price_usd"].to_list() == [10.0, 11.0, 12.0]
    assert out["valid_to"].to_list()[:2] == [ts(5), ts(10)]
    assert out["valid_to"][-1] is None
    assert out["is_current"].to_list() == [False, False, True]


def test_catalog_takes_the_current_interval_and_review_summary() -> None:
    products = pl.LazyFrame({
        "product_id": [1, 2], "name": ["a", "b"], "category": ["home", "toys"],
        "subcategory": ["decor", "games"], "brand": ["Acme", "Nova"],
        "launch_date": [date(2025, 1, 1)] * 2, "list_price_usd": [10.0, 20.0],
    })  # fmt: skip
    history = producto.pricing_history(
        products,
        pl.LazyFrame(
            {
                "product_id": [1],
                "effective_ts": [ts(5)],
                "price_usd": [15.0],
                "reason": ["adjustment"],
            }
        ),
        AT,
    )
    reviews = pl.LazyFrame({"product_id": [1, 1], "rating": [4, 5]})
    out = producto.catalog(products, history, reviews, AT).collect()
    assert out["current_price_usd"].to_list() == [15.0, 20.0]
    assert out["avg_rating"].to_list() == [4.5, None]
    assert out["total_reviews"].to_list() == [2, 0]
    assert out["price_updated_at"].to_list() == [ts(5), None]


def _sql(query: str, **frames: pl.DataFrame) -> pl.DataFrame:
    with duck.connect() as con:
        for name, frame in frames.items():
            con.register(name, frame)
        return con.sql(query.replace("$run_at", f"'{AT.isoformat()}'")).pl()


def test_latest_shipment_status_wins_within_a_batch() -> None:
    good = pl.DataFrame({
        "shipment_id": [1, 1, 2], "status": ["shipped", "delivered", "shipped"],
        "event_ts": [ts(1), ts(4), ts(2)], "ingested_at": [ts(2), ts(5), ts(3)],
        "region_raw": ["EU", "EU", "NA"],
    })  # fmt: skip
    out = _sql(logistica.LATEST_STATUS, good=good).sort("shipment_id")
    assert out["status"].to_list() == ["delivered", "shipped"]
    assert "region_raw" not in out.columns


def test_tracking_marks_late_and_returned_shipments() -> None:
    shipments = pl.DataFrame({
        "shipment_id": [1, 2, 3], "order_id": [10, 20, 30], "customer_id": [7, 8, 9],
        "region": ["EU"] * 3, "warehouse_id": [5, 5, 6], "carrier": ["EuroShip"] * 3,
        "status": ["delivered", "delivered", "shipped"],
        "promised_ts": [ts(5), ts(5), ts(5)], "shipped_ts": [ts(1), ts(1), ts(2)],
        "delivered_ts": [ts(4), ts(8), None], "event_ts": [ts(4), ts(8), ts(2)],
    })  # fmt: skip
    returns = pl.DataFrame({
        "return_id": [1], "shipment_id": [2], "return_ts": [ts(12)], "reason": ["late_delivery"],
    })  # fmt: skip
    out = _sql(logistica.SHIPMENT_TRACKING, shipments=shipments, returns=returns)
    assert out["status"].to_list() == ["delivered", "returned", "shipped"]
    assert out["is_late"].to_list() == [False, True, None]
    assert out["delivery_days"].to_list() == [pytest.approx(3.0), pytest.approx(7.0), None]
    assert out["return_reason"].to_list() == [None, "late_delivery", None]
