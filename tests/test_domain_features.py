"""Domain feature tables: point-in-time logic per domain on tiny frames, and the federated churn_v2
service over a generated world."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from domains.finanzas import features as finanzas
from domains.logistica import features as logistica
from domains.marketing import features as marketing
from domains.producto import features as producto
from domains.ventas import features as ventas
from lakehouse import features, lineage, storage
from lakehouse import snapshots as snap
from lakehouse.context import UndeclaredDependencyError
from lakehouse.orchestration import run_features, run_pipelines
from lakehouse.simulation import generate

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
US = timedelta(microseconds=1)
TS = pl.Datetime("us", "UTC")


def day(offset: float) -> datetime:
    return T0 + timedelta(days=offset)


def frame(rows: list[tuple], columns: str, **casts: pl.DataType) -> pl.LazyFrame:
    df = pl.DataFrame(rows, schema=columns.split(), orient="row")
    stamps = {c: TS for c, t in df.schema.items() if isinstance(t, pl.Datetime)}
    return df.cast({**stamps, **casts}).lazy()  # type: ignore[arg-type]


def first_seen(rows: dict[int, float]) -> pl.LazyFrame:
    return frame([(c, day(d)) for c, d in rows.items()], "customer_id first_seen")


def by(df: pl.LazyFrame, key: str) -> dict[int, dict]:
    return {row[key]: row for row in df.collect().iter_rows(named=True)}


# ---------------------------------------------------------------- snapshot plumbing
def test_grids_fall_on_monday_midnights_and_cover_the_last_ingestion() -> None:
    assert snap.grid(day(-10), day(1), 7) == [day(-7), day(0), day(7)]
    assert snap.grid(day(-0.5), day(1), 1) == [day(0), day(1)]
    orders = frame([(day(-10), day(-9)), (day(-1), day(0.5))], "order_ts ingested_at")
    events = frame([(day(-20), day(8))], "event_ts ingested_at")
    times = snap.snapshot_times([(orders, "order_ts"), (events, "event_ts")], 7)
    # the grid up to the newest ingestion (day 8), then a snapshot at that instant
    assert times == [day(-14), day(-7), day(0), day(7), day(8)]
    assert ventas.snapshot_times(orders, 7) == [day(-7), day(0), day(0.5)]
    ahead = frame([(day(-10), day(-9)), (day(2), day(0.5))], "shipped_ts ingested_at")
    assert snap.snapshot_times([(ahead, "shipped_ts")], 7)[-1] == day(0.5)  # not day(2)
    with pytest.raises(ValueError, match="positive"):
        snap.snapshot_times([(orders, "order_ts")], 0)


def test_a_row_is_first_seen_when_it_has_both_happened_and_arrived() -> None:
    rows = frame(
        [(1, day(-3), day(-2)), (1, day(-1), day(-1.5)), (2, day(-1), day(1))],
        "customer_id order_ts ingested_at",
    )
    seen = snap.first_seen(rows, "customer_id", "order_ts")
    assert by(seen, "customer_id")[1]["first_seen"] == day(-2)
    assert by(snap.present(seen, "customer_id", day(0)), "customer_id").keys() == {1}
    assert by(snap.present(seen, "customer_id", day(1)), "customer_id").keys() == {1, 2}


def test_feature_jobs_read_only_declared_products() -> None:
    assert snap.context("ventas").domain.dependencies == [
        "producto.catalog",
        "producto.pricing_history",
    ]
    with pytest.raises(UndeclaredDependencyError):  # producto sits upstream of everyone
        snap.context("producto").product("ventas.customer_transaction_history")
    with pytest.raises(UndeclaredDependencyError):  # stock is logistica's, and private
        snap.context("producto").table("logistica.curated.stock_levels")


# ---------------------------------------------------------------- logistica
SHIPMENTS = frame(
    [  # id, customer, status, shipped, promised, delivered, ingested
        (1, 1, "delivered", day(-10), day(-7), day(-6), day(-5)),  # late, 4 days
        (2, 1, "delivered", day(-5), day(-2), day(-3), day(-2)),  # on time, 2 days
        (3, 1, "delivered", day(-4), day(-2), day(-1), day(1)),  # late, arrives after T0
        (4, 1, "delivered", day(-45), day(-31), day(-30), day(-29)),  # on the 30-day edge
        (5, 1, "delivered", day(-40) - US, day(-29), day(-30) - US, day(-29)),  # just outside
        (6, 1, "shipped", day(-2), day(3), None, day(-1)),  # in transit
        (7, 2, "delivered", day(-3), day(1), day(0), day(0)),  # delivered at the snapshot
    ],
    "shipment_id customer_id status shipped_ts promised_ts delivered_ts ingested_at",
)
RETURNS = frame(
    [(2, 1, day(-1), day(0)), (1, 1, day(-2), day(3))],  # the second arrives after T0
    "shipment_id customer_id return_ts ingested_at",
)
CUSTOMERS = first_seen({1: -50, 2: -5, 3: -1, 4: 1})


def logistica_at(snapshot: datetime) -> dict[int, dict]:
    delivered = logistica.deliveries(SHIPMENTS)
    return by(
        logistica.customer_features_at(delivered, RETURNS, CUSTOMERS, snapshot), "customer_id"
    )


def test_logistica_counts_deliveries_known_at_the_snapshot() -> None:
    rows = logistica_at(T0)
    assert rows.keys() == {1, 2, 3}  # customer 4 had not ordered yet
    one = rows[1]
    assert one["avg_delivery_time_days"] == pytest.approx((4 + 2 + 15 + 10) / 4)
    assert one["on_time_delivery_rate"] == 0.5
    assert one["total_shipments_30d"] == 3  # shipment 4 on the window's edge counts, 5 does not
    assert one["late_deliveries_30d"] == 2
    assert one["returns_30d"] == 1  # the return of shipment 1 is not known yet
    assert one["return_rate_30d"] == pytest.approx(1 / 3)
    two = rows[2]  # its delivery happened at T0, not before it
    assert (two["total_shipments_30d"], two["avg_delivery_time_days"]) == (0, None)
    assert two["return_rate_30d"] is None
    assert rows[3]["late_deliveries_30d"] == 0
    assert one["event_timestamp"] == one["created_timestamp"] == T0


def test_logistica_includes_late_deliveries_and_returns_once_ingested() -> None:
    one = logistica_at(day(7))[1]
    assert one["total_shipments_30d"] == 3  # 1, 2 and the late-arriving 3; 4 left the window
    assert one["late_deliveries_30d"] == 2
    assert one["returns_30d"] == 2
    assert one["return_rate_30d"] == pytest.approx(2 / 3)
    assert one["avg_delivery_time_days"] == pytest.approx((4 + 2 + 3 + 15 + 10) / 5)
    assert logistica_at(day(7))[2]["total_shipments_30d"] == 1


STOCK = frame(
    [  # count date, warehouse, product, units, ingested
        (date(2026, 2, 23), 1, 1, 100, day(-6)),
        (date(2026, 3, 1), 1, 1, 80, day(1)),  # counted before T0, arrives after it
        (date(2026, 2, 23), 2, 1, 10, day(-6)),
        (date(2026, 2, 9), 1, 2, 50, day(-20)),  # too old to be on hand
    ],
    "snapshot_date warehouse_id product_id units_on_hand ingested_at",
    units_on_hand=pl.Int32(),
)


def test_logistica_stock_is_the_latest_known_count_per_warehouse() -> None:
    now = by(logistica.stock_at(STOCK, T0), "product_id")
    assert now.keys() == {1}
    assert now[1]["stock_level"] == 110
    assert now[1]["low_stock_warehouses"] == 1
    assert now[1]["stock_age_days"] == 7
    later = by(logistica.stock_at(STOCK, day(1)), "product_id")[1]
    assert (later["stock_level"], later["stock_age_days"]) == (90, 8)


# ---------------------------------------------------------------- producto
PRODUCTS = frame(
    [  # id, name, category, subcategory, brand, launch, list price, ingested
        (1, "a", "books", "fiction", "Kiri", date(2025, 1, 1), 100.0, day(-100)),
        (2, "b", "books", "fiction", "Kiri", date(2026, 2, 20), 50.0, day(-100)),
        (3, "c", "toys", "games", "Tula", date(2025, 1, 1), 20.0, day(1)),  # arrives later
    ],
    "product_id name category subcategory brand launch_date list_price_usd ingested_at",
)
PRICE_CHANGES = frame(
    [
        (1, 1, day(-40), 110.0, "adjustment", day(-39)),
        (2, 1, day(-5), 121.0, "adjustment", day(-4)),
        (3, 1, day(-1), 150.0, "adjustment", day(1)),  # late
    ],
    "change_id product_id effective_ts price_usd reason ingested_at",
)
REVIEWS = frame(
    [(1, 5, day(-3), day(-2)), (1, 3, day(-2), day(2))],  # the second arrives late
    "product_id rating review_ts ingested_at",
    rating=pl.Int8(),
)


def producto_at(snapshot: datetime) -> dict[int, dict]:
    rows = producto.product_features_at(PRODUCTS, PRICE_CHANGES, REVIEWS, snapshot)
    return by(rows, "product_id")


def test_producto_prices_and_reviews_known_at_the_snapshot() -> None:
    rows = producto_at(T0)
    assert rows.keys() == {1, 2}
    one = rows[1]
    assert one["current_price"] == 121.0
    assert one["price_change_30d"] == pytest.approx(121 / 110 - 1)
    assert one["days_since_launch"] == (date(2026, 3, 2) - date(2025, 1, 1)).days
    assert (one["avg_rating"], one["total_reviews"]) == (5.0, 1)
    assert one["category"] == "books"
    two = rows[2]  # launched 10 days ago: no price 30 days back
    assert (two["current_price"], two["price_change_30d"]) == (50.0, None)
    assert (two["avg_rating"], two["total_reviews"], two["days_since_launch"]) == (None, 0, 10)


def test_producto_includes_late_price_changes_and_reviews_once_ingested() -> None:
    rows = producto_at(day(2))
    assert rows[1]["current_price"] == 150.0
    assert (rows[1]["avg_rating"], rows[1]["total_reviews"]) == (4.0, 2)
    assert rows[3]["current_price"] == 20.0


# ---------------------------------------------------------------- ventas price change
ORDERS = frame(
    [  # id, customer, placed, status, ingested
        (1, 1, day(-10), "completed", day(-9)),
        (2, 1, day(-5), "completed", day(-4)),
        (3, 1, day(-2), "completed", day(1)),  # late
        (4, 1, day(-3), "cancelled", day(-2)),
        (5, 2, day(-100), "completed", day(-99)),
        (6, 3, day(-90), "completed", day(-89)),  # on the 90-day edge
        (7, 4, day(-90) - US, "completed", day(-89)),  # just outside
    ],
    "order_id customer_id order_ts status ingested_at",
)
LINES = frame(
    [(1, 3, 2, day(-9)), (2, 1, 1, day(-4)), (2, 2, 1, day(-4)), (3, 3, 5, day(1)),
     (4, 1, 10, day(-2)), (5, 1, 1, day(-99)), (6, 1, 1, day(-89)), (7, 3, 1, day(-89))],
    "order_id product_id quantity ingested_at",
)  # fmt: skip
CATALOG = frame([(1, "books"), (2, "books"), (3, "toys")], "product_id category")
PRICES = frame(
    [  # product, valid from, price, ingested
        (1, day(-400), 10.0, day(-399)),
        (1, day(-20), 12.0, day(1)),  # a price that reached the lakehouse late
        (2, day(-400), 30.0, day(-399)),
        (3, day(-400), 20.0, day(-399)),
    ],
    "product_id valid_from price_usd ingested_at",
)


def ventas_at(snapshot: datetime, prices: pl.LazyFrame = PRICES) -> dict[int, dict]:
    bought = ventas.purchases(LINES, ORDERS, CATALOG)
    buyers = snap.first_seen(
        ORDERS.filter(pl.col("status") == "completed"), "customer_id", "order_ts"
    )
    rows = ventas.price_change_at(bought, buyers, prices, CATALOG, snapshot)
    return by(rows, "customer_id")


def test_ventas_favourite_category_from_units_known_at_the_snapshot() -> None:
    rows = ventas_at(T0)
    assert rows.keys() == {1, 2, 3, 4}
    one = rows[1]  # 2 toys and 2 books: the tie goes to the most recent purchase (books)
    assert (one["fav_category"], one["fav_category_share_90d"]) == ("books", 0.5)
    assert rows[2]["fav_category"] is None  # nothing bought in 90 days
    assert rows[3]["fav_category"] == "books"
    assert rows[4]["fav_category"] is None
    later = ventas_at(day(7))[1]  # the late order's 5 toys count once ingested
    assert (later["fav_category"], later["fav_category_share_90d"]) == ("toys", 7 / 9)


def test_ventas_price_change_uses_prices_known_at_the_snapshot() -> None:
    now = by(ventas.category_price_change(PRICES, CATALOG, T0), "category")
    assert now["books"]["price_change"] == 0.0  # the rise to 12 is not known yet
    later = by(ventas.category_price_change(PRICES, CATALOG, day(7)), "category")
    assert later["books"]["price_change"] == pytest.approx((12 + 30) / (10 + 30) - 1)
    assert later["toys"]["price_change"] == 0.0
    # without ingestion times in the product, a price counts from its valid_from
    untimed = PRICES.drop("ingested_at")
    assert ventas_at(T0, untimed)[1]["fav_category_price_change_30d"] == pytest.approx(0.05)
    assert ventas_at(T0)[1]["fav_category_price_change_30d"] == 0.0


# ---------------------------------------------------------------- marketing
EVENTS = frame(
    [  # customer, type, at, ingested
        (1, "send", day(-1), day(0)),
        (1, "send", day(-5), day(-4)),
        (1, "open", day(-5), day(-4)),
        (1, "send", day(-10), day(-9)),
        (1, "send", day(-30), day(-29)),  # on the 30-day edge
        (1, "send", day(-30) - US, day(-29)),  # just outside
        (1, "click", day(-1), day(1)),  # late
        (2, "send", day(-100), day(-99)),
    ],
    "customer_id event_type event_ts ingested_at",
)
HISTORY = frame(
    [  # customer, placed, usd, status, ingested
        (1, day(-40), 100.0, "completed", day(-39)),
        (1, day(-3), 100.0, "completed", day(1)),  # late
        (3, day(-1), 50.0, "completed", day(-0.5)),
        (4, day(-70), 30.0, "completed", day(-69)),
        (4, day(-2), 999.0, "cancelled", day(-1)),
    ],
    "customer_id order_ts amount_usd status ingested_at",
).with_columns(order_date=pl.col("order_ts").dt.date())
PEOPLE = first_seen({1: -40, 2: -100, 3: -1, 4: -70, 5: 3})


def marketing_at(snapshot: datetime) -> dict[int, dict]:
    sql = snap.context("marketing").sql
    rows = marketing.customer_features_at(sql, EVENTS, HISTORY, PEOPLE, snapshot)
    return by(rows, "customer_id")


def test_marketing_pressure_engagement_and_segment_known_at_the_snapshot() -> None:
    rows = marketing_at(T0)
    assert rows.keys() == {1, 2, 3, 4}
    one = rows[1]
    assert (one["emails_received_7d"], one["emails_received_30d"]) == (2, 4)
    assert (one["open_rate_30d"], one["click_rate_30d"]) == (0.25, 0.0)
    assert one["days_since_last_touch"] == 1
    assert one["segment"] == "at_risk"  # the order placed 3 days ago has not arrived
    two = rows[2]
    assert (two["emails_received_30d"], two["open_rate_30d"]) == (0, None)
    assert (two["days_since_last_touch"], two["segment"]) == (None, "hibernating")
    assert rows[3]["segment"] == "new"
    assert rows[4]["segment"] == "hibernating"  # the cancelled order does not count


def test_marketing_includes_late_events_and_orders_once_ingested() -> None:
    one = marketing_at(day(7))[1]
    assert one["emails_received_30d"] == 3
    assert one["click_rate_30d"] == pytest.approx(1 / 3)
    assert one["segment"] == "champion"  # recent, most orders and spend in 90 days


# ---------------------------------------------------------------- finanzas
TRANSACTIONS = frame(
    [  # payment, customer, status, risk, paid at
        (1, 1, "failed", 0.2, day(-1)),
        (2, 1, "succeeded", 0.4, day(-10)),
        (3, 1, "succeeded", 0.6, day(-30)),  # on the 30-day edge
        (4, 1, "failed", 0.9, day(-30) - US),  # just outside
        (5, 1, "failed", 1.0, day(-2)),  # late
        (6, 2, "succeeded", 0.1, day(-3)),  # still in quarantine: not curated
    ],
    "payment_id customer_id status risk_score payment_ts",
)
CURATED_PAYMENTS = frame(
    [(1, day(0)), (2, day(-9)), (3, day(-29)), (4, day(-29)), (5, day(1))],
    "payment_id ingested_at",
)
CHARGEBACKS = frame(
    [(1, day(-90), day(-89)), (1, day(-5), day(2)), (1, day(-90) - US, day(-89))],
    "customer_id chargeback_ts ingested_at",
)


def finanzas_at(snapshot: datetime) -> dict[int, dict]:
    paid = finanzas.payments(TRANSACTIONS, CURATED_PAYMENTS)
    customers = snap.first_seen(paid, "customer_id", "payment_ts")
    return by(finanzas.customer_features_at(paid, CHARGEBACKS, customers, snapshot), "customer_id")


def test_finanzas_payments_and_chargebacks_known_at_the_snapshot() -> None:
    rows = finanzas_at(T0)
    assert rows.keys() == {1}
    one = rows[1]
    assert (one["payment_attempts_30d"], one["payment_failures_30d"]) == (3, 1)
    assert one["avg_fraud_score_30d"] == pytest.approx(0.4)
    assert one["max_fraud_score_30d"] == 0.6
    assert one["chargebacks_90d"] == 1  # the one on the 90-day edge; the recent one is late
    later = finanzas_at(day(7))[1]
    assert (later["payment_attempts_30d"], later["payment_failures_30d"]) == (3, 2)
    assert later["avg_fraud_score_30d"] == pytest.approx((0.2 + 0.4 + 1.0) / 3)
    assert later["chargebacks_90d"] == 1


# ---------------------------------------------------------------- on a generated world
TABLES = {
    "ventas_customer_fv": (ventas.features_path, ventas.SCHEMA, "customer_id"),
    "ventas_price_change_fv": (ventas.price_change_path, ventas.PRICE_SCHEMA, "customer_id"),
    "logistica_customer_fv": (
        logistica.customer_features_path,
        logistica.CUSTOMER_SCHEMA,
        "customer_id",
    ),
    "logistica_product_fv": (
        logistica.product_features_path,
        logistica.PRODUCT_SCHEMA,
        "product_id",
    ),
    "producto_product_fv": (producto.features_path, producto.SCHEMA, "product_id"),
    "marketing_customer_fv": (marketing.features_path, marketing.SCHEMA, "customer_id"),
    "finanzas_customer_fv": (finanzas.features_path, finanzas.SCHEMA, "customer_id"),
}


@pytest.mark.slow
def test_every_domain_feature_table_and_churn_v2_on_a_tiny_world(data_dir: Path) -> None:
    generate("tiny", seed=5)
    assert all(r.succeeded for r in run_pipelines())
    rows = run_features()
    assert set(rows) == {"ventas", "producto", "logistica", "marketing", "finanzas"}
    tables = {}
    for view, (path, schema, key) in TABLES.items():
        df = storage.read(path())
        assert dict(df.schema) == schema, view
        assert df.height > 0, view
        assert df["event_timestamp"].equals(df["created_timestamp"])
        assert not df.select(pl.struct(key, "event_timestamp").is_duplicated().any()).item()
        tables[view] = df
    assert sum(df.height for df in tables.values()) == sum(rows.values())
    run_features()  # a rebuild writes the same rows
    for view, (path, _, key) in TABLES.items():
        order = [key, "event_timestamp"]  # Delta keeps no row order across files
        assert storage.read(path()).sort(order).equals(tables[view].sort(order)), view
    jobs = {e["job"]["name"] for e in lineage.read_events() if e["eventType"] == "COMPLETE"}
    assert {"logistica.features.product_features", "ventas.features.customer_price_change"} <= jobs

    registered = features.apply()
    assert {f"feature_view:{view}" for view in TABLES} <= set(registered)
    assert {"feature_service:churn_v1", "feature_service:churn_v2"} <= set(registered)
    store = features.feature_store()
    service = store.get_feature_service("churn_v2")
    views = [store.get_feature_view(p.name) for p in service.feature_view_projections]
    assert len({fv.tags["domain"] for fv in views}) >= 4
    assert all(fv.owner and fv.tags["pii"] == "false" for fv in views)
    assert all(f.description for fv in views for f in fv.features)

    # the as-of time falls between two snapshots: Feast must return the earlier one
    snapshot = sorted(tables["finanzas_customer_fv"]["event_timestamp"].unique())[-3]
    active = (
        tables["logistica_customer_fv"]
        .filter((pl.col("event_timestamp") == snapshot) & (pl.col("total_shipments_30d") > 0))
        .head(4)
    )
    entity_df = pd.DataFrame(
        {
            "customer_id": active["customer_id"].to_list(),
            "event_timestamp": [snapshot + timedelta(days=2)] * active.height,
        }
    )
    got = features.historical_features("churn_v2", entity_df).set_index("customer_id")
    wanted = [f.name for fv in views for f in fv.features]
    assert set(wanted) <= set(got.columns)
    for projection, fv in zip(service.feature_view_projections, views, strict=True):
        expected = tables[projection.name].filter(pl.col("event_timestamp") == snapshot)
        expected = expected.join(active.select("customer_id"), on="customer_id")
        assert expected.height == active.height
        for row in expected.iter_rows(named=True):
            for f in fv.features:
                value, served = row[f.name], got.loc[row["customer_id"], f.name]
                if value is None:
                    assert pd.isna(served), (fv.name, f.name)
                elif isinstance(value, float):
                    assert served == pytest.approx(value), (fv.name, f.name)
                else:
                    assert served == value, (fv.name, f.name)
