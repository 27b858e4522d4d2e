"""Churn labels on hand-made orders, and a real train run: Feast training set into MLflow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from models.churn import as_of_dates, churn_labels

T = datetime(2026, 4, 1, tzinfo=UTC)
TS = pl.Datetime("us", "UTC")


def day(offset: float, base: datetime = T) -> datetime:
    return base + timedelta(days=offset)


def frames(
    orders: list[tuple[int, float, float, str]], signups: dict[int, float], base: datetime = T
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Orders as (customer_id, order day, ingested day, status) and signup days, around base."""
    order_rows = [
        {
            "order_id": i,
            "customer_id": c,
            "order_ts": day(placed, base),
            "ingested_at": day(arrived, base),
            "status": status,
        }
        for i, (c, placed, arrived, status) in enumerate(orders)
    ]
    customer_rows = [{"customer_id": c, "signup_ts": day(s, base)} for c, s in signups.items()]
    cast = {"order_ts": TS, "ingested_at": TS}
    return (
        pl.DataFrame(order_rows).cast(cast).lazy(),  # type: ignore[arg-type]
        pl.DataFrame(customer_rows).cast({"signup_ts": TS}).lazy(),
    )


def test_labels_mark_active_customers_without_a_purchase_in_the_next_30_days() -> None:
    orders, customers = frames(
        [
            (1, -10, -10, "completed"),
            (1, 5, 5, "completed"),  # buys again: stays
            (2, -20, -20, "completed"),  # nothing after: churns
            (3, -1, -1, "cancelled"),  # active through a cancelled order
            (3, 3, 3, "cancelled"),  # ...and a cancelled order is not a purchase: churns
            (4, -120, -120, "completed"),  # inactive for 90 days: not in the population
            (4, 2, 2, "completed"),
            (5, -5, -5, "completed"),  # signed up after T: not in the population
            (6, -5, 1, "completed"),  # its only order arrives after T: not known to be active
            (7, -30, -30, "completed"),  # buys only after the 30-day horizon: churns
            (7, 31, 31, "completed"),
        ],
        {1: -200, 2: -200, 3: -200, 4: -200, 5: 1, 6: -200, 7: -200},
    )
    labels = churn_labels(orders, customers, [T])
    assert dict(labels.schema) == {
        "customer_id": pl.Int64,
        "event_timestamp": TS,
        "churned": pl.Int64,
    }
    assert dict(labels.select("customer_id", "churned").iter_rows()) == {1: 0, 2: 1, 3: 1, 7: 1}
    assert labels["event_timestamp"].to_list() == [T] * 4
    assert churn_labels(orders, customers, []).is_empty()


def test_as_of_dates_are_monthly_and_leave_30_days_of_future() -> None:
    start = datetime(2026, 1, 15, tzinfo=UTC)
    orders, _ = frames([(1, 0, 0, "completed"), (1, 156, 156, "completed")], {1: 0}, start)
    # orders span 2026-01-15 .. 2026-06-20, so the last as-of with 30 days after it is May 1st
    assert as_of_dates(orders, "1mo") == [datetime(2026, m, 1, tzinfo=UTC) for m in (2, 3, 4, 5)]
    assert as_of_dates(orders.filter(pl.col("order_id") == 0)) == []


def synthetic_world(seed: int = 7, n: int = 300) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Customers buying at their own rate until some stop for good; ~60 USD orders."""
    rng = np.random.default_rng(seed)
    start, days = datetime(2026, 1, 1, tzinfo=UTC), 180
    rate = rng.gamma(2.0, 0.05, n)  # orders per day, ~3 a month on average
    signup = rng.integers(-60, 60, n)
    stop = np.where(rng.random(n) < 0.5, rng.integers(30, days, n), days)
    rows = []
    for c in range(n):
        active = np.arange(max(signup[c], 0), stop[c])
        for d in active[rng.random(active.size) < rate[c]]:
            placed = start + timedelta(days=int(d), seconds=int(rng.integers(0, 86_400)))
            delay = timedelta(hours=int(rng.choice([0, 1, 2, 72], p=[0.6, 0.25, 0.1, 0.05])))
            rows.append(
                {
                    "order_id": len(rows),
                    "customer_id": c,
                    "order_ts": placed,
                    "ingested_at": placed + delay,
                    "region": "LATAM",
                    "currency": "USD",
                    "payment_method": str(rng.choice(["card", "pix", "paypal"])),
                    "basket_size": int(rng.integers(1, 6)),
                    "amount": float(rng.gamma(4.0, 15.0)),
                    "status": "completed" if rng.random() < 0.92 else "cancelled",
                }
            )
    orders = pl.DataFrame(rows).with_columns(
        pl.col("order_ts", "ingested_at").cast(TS),
        pl.col("basket_size").cast(pl.Int32),
        amount_usd=pl.col("amount"),
    )
    customers = pl.DataFrame(
        {
            "customer_id": np.arange(n),
            "region": ["LATAM"] * n,
            "signup_ts": [start + timedelta(days=int(s)) for s in signup],
        }
    ).cast({"signup_ts": TS})
    return orders, customers
