"""Contract tests of every domain's data product API on small hand-made gold tables."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from fastapi.testclient import TestClient

from app.api import create_app
from domains.ventas.api import V1_DEPRECATED_ON
from lakehouse import storage
from lakehouse.config import get_settings
from lakehouse.contracts import cast_to_contract, contract_for

CALC = datetime(2024, 2, 1, 3, 0, tzinfo=UTC)
CALC_LATE = datetime(2024, 2, 1, 4, 30, tzinfo=UTC)
CALC_ISO = "2024-02-01T03:00:00Z"
CALC_LATE_ISO = "2024-02-01T04:30:00Z"
# Customer identity columns (ventas curated masks them into tokens); product and campaign
# `name`s are not personal.
PERSONAL = {"email", "phone", "name_token", "email_token", "phone_token"}


def ts(day: int, hour: int = 0) -> datetime:
    """A UTC timestamp in January 2024."""
    return datetime(2024, 1, day, hour, tzinfo=UTC)


def write_gold(product: str, columns: dict[str, list[Any]], **extra: pl.Expr) -> None:
    """Publish rows as the gold table of `product`, typed as its contract says (plus `extra`)."""
    frame = cast_to_contract(pl.DataFrame(columns), contract_for(product)).with_columns(**extra)
    domain, table = product.split(".")
    storage.write(frame, get_settings().table_path(domain, "gold", table))


def build_gold_tables() -> None:
    """Every product the APIs serve, a few rows each, written out of key order on purpose."""
    write_gold(
        "ventas.daily_revenue",
        {
            "date": [date(2024, 1, 15)] * 4 + [date(2024, 1, 16)] * 2 + [date(2024, 1, 18)],
            "region": ["LATAM", "NA", "EU", "APAC", "LATAM", "EU", "NA"],
            "revenue_gross": [100.0, 200.0, 50.25, 25.0, 110.0, 60.0, 70.0],
            "revenue_net": [90.0, 195.0, 50.25, 20.0, 100.0, 55.5, 70.0],
            "transactions_count": [10, 20, 5, 3, 11, 6, 7],
            "refunds_count": [1, 2, 0, 1, 1, 1, 0],
            "currency": ["USD"] * 7,
            "calculated_at": [CALC, CALC, CALC, CALC_LATE, CALC, CALC, CALC],
        },
    )
    write_gold(
        "ventas.customer_transaction_history",
        {
            "order_id": [12, 14, 11, 13, 15, 16],
            "customer_id": [7, 7, 7, 7, 8, 9],
            "order_ts": [ts(12, 9), ts(15, 8), ts(10, 10), ts(12, 9), ts(11), ts(13)],
            "order_date": [date(2024, 1, d) for d in (12, 15, 10, 12, 11, 13)],
            "region": ["EU", "EU", "EU", "EU", "NA", "APAC"],
            "currency": ["EUR", "EUR", "EUR", "EUR", "USD", "USD"],
            "payment_method": ["card", "wallet", "card", "card", "card", "card"],
            "basket_size": [2, 1, 3, 1, 1, 4],
            "amount": [46.0, 92.0, 23.0, 9.2, 10.0, 80.0],
            "amount_usd": [50.0, 100.0, 25.0, 10.0, 10.0, 80.0],
            "status": [
                "completed",
                "completed",
                "completed",
                "cancelled",
                "completed",
                "completed",
            ],
            "refunded": [False, True, False, False, False, False],
            "refund_amount_usd": [0.0, 100.0, 0.0, 0.0, 0.0, 0.0],
            "ingested_at": [ts(16)] * 6,
            "calculated_at": [CALC] * 6,
        },
        # A token column a careless pipeline change could add: the API must never serve it.
        email_token=pl.lit("0f3c9a"),
    )
    write_gold(
        "logistica.shipment_tracking",
        {
            "shipment_id": [502, 501, 503],
            "order_id": [100, 100, 101],
            "customer_id": [7, 7, 8],
            "region": ["EU", "EU", "NA"],
            "warehouse_id": [2, 1, 3],
            "carrier": ["FastShip", "PostCo", "PostCo"],
            "status": ["shipped", "delivered", "returned"],
            "promised_ts": [ts(20), ts(18), ts(19)],
            "shipped_ts": [ts(17), ts(16), ts(16)],
            "delivered_ts": [None, ts(17, 12), ts(18)],
            "is_late": [None, False, False],
            "delivery_days": [None, 1.5, 2.0],
            "return_reason": [None, None, "damaged"],
            "updated_at": [ts(17), ts(17, 12), ts(21)],
            "calculated_at": [CALC] * 3,
        },
    )
    write_gold(
        "logistica.delivery_performance",
        {
            "date": [date(2024, 1, 16), date(2024, 1, 15), date(2024, 1, 15)],
            "region": ["NA", "NA", "EU"],
            "shipments_delivered": [30, 40, 20],
            "on_time_rate": [0.9, 0.95, 0.8],
            "avg_delivery_days": [2.5, 2.0, 3.0],
            "late_count": [3, 2, 4],
            "returns_count": [1, 0, 2],
            "calculated_at": [CALC] * 3,
        },
    )
    write_gold(
        "producto.catalog",
        {
            "product_id": [5, 3, 1, 4, 2],
            "name": ["Kiri blush", "Kiri pan", "Kiri gloss", "Casa vase", "Polar cream"],
            "category": ["beauty", "home", "beauty", "home", "beauty"],
            "subcategory": ["makeup", "kitchen", "makeup", "decor", "skincare"],
            "brand": ["Kiri", "Kiri", "Kiri", "Casa", "Polar"],
            "launch_date": [date(2023, 5, 1)] * 5,
            "current_price_usd": [20.0, 55.0, 10.0, 80.0, 30.0],
            "price_updated_at": [None, None, ts(5), None, None],
            "avg_rating": [4.5, None, 3.8, 4.0, 4.2],
            "total_reviews": [12, 0, 21, 3, 8],
            "calculated_at": [CALC] * 5,
        },
    )
    write_gold(
        "producto.pricing_history",
        {
            "product_id": [1, 1, 2, 1],
            "valid_from": [
                ts(5),
                datetime(2023, 6, 1, tzinfo=UTC),
                ts(1),
                datetime(2023, 1, 1, tzinfo=UTC),
            ],
            "valid_to": [None, ts(5), None, datetime(2023, 6, 1, tzinfo=UTC)],
            "price_usd": [10.0, 12.0, 30.0, 11.0],
            "change_reason": ["category_repricing", "adjustment", "initial", "initial"],
            "is_current": [True, False, True, False],
            "calculated_at": [CALC] * 4,
        },
    )
    write_gold(
        "marketing.campaign_metrics",
        {
            "campaign_id": [3, 1, 2],
            "name": ["toys-sms-3", "home-email-1", "beauty-push-2"],
            "channel": ["sms", "email", "push"],
            "target_category": ["toys", "home", "beauty"],
            "start_date": [date(2024, 2, 1), date(2024, 1, 1), date(2024, 1, 8)],
            "end_date": [date(2024, 2, 15), date(2024, 1, 10), date(2024, 1, 20)],
            "budget_usd": [1000.0, 5000.0, 2500.0],
            "sends": [100, 1000, 500],
            "opens": [10, 250, 100],
            "clicks": [2, 50, 25],
            "conversions": [1, 10, 5],
            "open_rate": [0.1, 0.25, 0.2],
            "click_rate": [0.02, 0.05, 0.05],
            "conversion_rate": [0.01, 0.01, 0.01],
            "attributed_revenue_usd": [40.0, 900.0, 350.0],
            "calculated_at": [CALC] * 3,
        },
    )
    write_gold(
        "marketing.customer_segments",
        {
            "customer_id": [5, 2, 4, 1, 3],
            "segment": ["at_risk", "at_risk", "new", "champion", "at_risk"],
            "recency_days": [60, 45, None, 3, 50],
            "orders_90d": [1, 2, 0, 12, 1],
            "spend_90d_usd": [20.0, 75.5, 0.0, 2400.0, 31.0],
            "emails_30d": [4, 3, 0, 5, 2],
            "open_rate_30d": [0.25, 0.0, None, 0.6, 0.5],
            "calculated_at": [CALC] * 5,
        },
    )
    write_gold(
        "finanzas.accounting_reports",
        {
            "date": [date(2024, 1, 31), date(2024, 1, 30), date(2024, 1, 31), date(2024, 2, 1)],
            "region": ["LATAM", "LATAM", "NA", "LATAM"],
            "currency": ["USD"] * 4,
            "revenue_gross_usd": [200.0, 100.0, 50.0, 70.0],
            "chargebacks_usd": [5.0, 0.0, 1.5, 0.0],
            "payments_count": [22, 11, 6, 8],
            "failed_payments_count": [2, 1, 1, 0],
            "ventas_revenue_gross_usd": [190.0, 100.0, 0.0, 70.0],
            "difference_pct": [5.2632, 0.0, 100.0, 0.0],
            "unmatched_payments_usd": [10.0, 0.0, 50.0, 0.0],
            "calculated_at": [CALC, CALC_LATE, CALC, CALC],
        },
    )
    write_gold(
        "finanzas.fraud_scores",
        {
            "customer_id": [7, 8, 7, 9, 8],
            "date": [date(2024, 1, day) for day in (15, 15, 16, 14, 16)],
            "payments_count": [1, 3, 2, 1, 1],
            "avg_risk_score": [0.1, 0.7, 0.5, 0.05, 0.2],
            "max_risk_score": [0.1, 0.95, 0.9, 0.05, 0.2],
            "chargebacks_90d": [0, 1, 0, 0, 0],
            "fraud_flag": [False, True, True, False, False],
            "calculated_at": [CALC] * 5,
        },
    )


@pytest.fixture
def mesh(data_dir: Path) -> Iterator[Path]:
    """A data dir whose gold layer holds build_gold_tables()."""
    build_gold_tables()
    yield data_dir


@pytest.fixture
def client(mesh: Path, api_key: Callable[[str], str]) -> TestClient:
    """A platform-admin client: reads every product but the restricted fraud scores."""
    return TestClient(create_app(), headers={"X-API-Key": api_key("platform-admin")})


@pytest.fixture
def finanzas(mesh: Path, api_key: Callable[[str], str]) -> TestClient:
    """A finanzas-service client: the only kind of account that reads fraud scores."""
    return TestClient(create_app(), headers={"X-API-Key": api_key("finanzas-service")})


def assert_error(response: Any, status: int, error_code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error_code", "message", "details"}
    assert body["error_code"] == error_code
    assert isinstance(body["message"], str) and body["message"]
    return body


def all_pages(client: TestClient, path: str, params: dict[str, Any], limit: int) -> list[dict]:
    """Follow next_offset from offset 0 and return every item, checking each page's fields."""
    items: list[dict] = []
    offset: int | None = 0
    while offset is not None:
        body = client.get(path, params={**params, "limit": limit, "offset": offset}).json()
        assert set(body) == {"items", "total", "limit", "offset", "next_offset"}
        assert (body["limit"], body["offset"]) == (limit, offset)
        assert len(body["items"]) <= limit
        items += body["items"]
        offset = body["next_offset"]
        assert offset is None or offset == len(items)
    assert len(items) == body["total"]
    return items


# Every endpoint with a request it answers 200, and the account that may send it.
ENDPOINTS = [
    ("/ventas/v2/daily-revenue", {"date": "2024-01-15"}, "platform-admin"),
    ("/ventas/v1/daily-revenue", {"date": "2024-01-15"}, "platform-admin"),
    (
        "/ventas/v2/revenue-trend",
        {"start_date": "2024-01-15", "end_date": "2024-01-18"},
        "platform-admin",
    ),
    ("/ventas/v2/customers/7/transactions", {}, "platform-admin"),
    ("/logistica/v1/shipments/100", {}, "platform-admin"),
    ("/logistica/v1/delivery-performance", {"start_date": "2024-01-15"}, "platform-admin"),
    ("/producto/v1/products", {}, "platform-admin"),
    ("/producto/v1/products/1/prices", {}, "platform-admin"),
    ("/marketing/v1/campaign-metrics", {}, "platform-admin"),
    ("/marketing/v1/customer-segments", {}, "platform-admin"),
    ("/finanzas/v1/accounting-reports", {"month": "2024-01"}, "platform-admin"),
    ("/finanzas/v1/fraud-scores", {}, "finanzas-service"),
]
PAGINATED = [
    "/ventas/v2/customers/7/transactions",
    "/producto/v1/products",
    "/marketing/v1/campaign-metrics",
    "/marketing/v1/customer-segments",
]


def rows_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row object of a response: items, or an accounting report's totals and days."""
    return body.get("items", []) + body.get("totals", []) + body.get("days", [])


# ---------------------------------------------------------------- every endpoint


@pytest.mark.parametrize(("path", "params", "account"), ENDPOINTS)
def test_every_endpoint_answers_with_data_version_calculated_at_and_no_pii(
    mesh: Path, api_key: Callable[[str], str], path: str, params: dict, account: str
) -> None:
    response = TestClient(create_app(), headers={"X-API-Key": api_key(account)}).get(
        path, params=params
    )

    assert response.status_code == 200, response.text
    assert response.headers["X-Data-Version"] == "0"
    rows = rows_of(response.json())
    assert rows
    assert all(row["calculated_at"] in (CALC_ISO, CALC_LATE_ISO) for row in rows)
    assert not PERSONAL & {key for row in rows for key in row}


@pytest.mark.parametrize(("path", "params", "account"), ENDPOINTS)
def test_every_endpoint_needs_an_api_key(mesh: Path, path: str, params: dict, account: str) -> None:
    assert_error(TestClient(create_app()).get(path, params=params), 401, "missing_api_key")


@pytest.mark.parametrize(("path", "params", "account"), ENDPOINTS)
def test_every_endpoint_is_503_before_its_product_is_built(
    data_dir: Path, api_key: Callable[[str], str], path: str, params: dict, account: str
) -> None:
    response = TestClient(create_app(), headers={"X-API-Key": api_key(account)}).get(
        path, params=params
    )

    body = assert_error(response, 503, "product_unavailable")
    assert "mesh build" in body["message"]


@pytest.mark.parametrize("path", PAGINATED)
@pytest.mark.parametrize(("limit", "offset"), [(0, 0), (1001, 0), (10, -1), ("many", 0)], ids=str)
def test_bad_paging_is_422(client: TestClient, path: str, limit: Any, offset: int) -> None:
    response = client.get(path, params={"limit": limit, "offset": offset})

    body = assert_error(response, 422, "invalid_request")
    assert body["details"][0]["field"] in ("query.limit", "query.offset")


def test_bad_paging_on_fraud_scores_is_422(finanzas: TestClient) -> None:
    assert_error(
        finanzas.get("/finanzas/v1/fraud-scores", params={"limit": 0}), 422, "invalid_request"
    )


def test_offset_past_the_end_is_an_empty_last_page(client: TestClient) -> None:
    body = client.get("/producto/v1/products", params={"offset": 50}).json()

    assert body == {"items": [], "total": 5, "limit": 100, "offset": 50, "next_offset": None}


def _referenced(node: Any) -> Iterator[str]:
    """Names of the component schemas a piece of OpenAPI refers to, at any depth."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref.rsplit("/", 1)[1]
        for value in node.values():
            yield from _referenced(value)
    elif isinstance(node, list):
        for value in node:
            yield from _referenced(value)


def test_openapi_documents_every_field_with_a_description_and_an_example(
    client: TestClient,
) -> None:
    spec = client.get("/openapi.json").json()
    domains = {"ventas", "logistica", "producto", "marketing", "finanzas"}
    operations = {
        path: ops["get"] for path, ops in spec["paths"].items() if path.split("/")[1] in domains
    }
    assert set(operations) == {
        "/ventas/v1/daily-revenue",
        "/ventas/v2/daily-revenue",
        "/ventas/v2/revenue-trend",
        "/ventas/v2/customers/{customer_id}/transactions",
        "/logistica/v1/shipments/{order_id}",
        "/logistica/v1/delivery-performance",
        "/producto/v1/products",
        "/producto/v1/products/{product_id}/prices",
        "/marketing/v1/campaign-metrics",
        "/marketing/v1/customer-segments",
        "/finanzas/v1/accounting-reports",
        "/finanzas/v1/fraud-scores",
    }
    pending = []
    for path, operation in operations.items():
        assert operation["summary"] and operation["description"], path
        assert {"200", "401", "403", "422", "429", "503"} <= set(operation["responses"]), path
        pending += _referenced(operation["responses"]["200"])
    schemas: set[str] = set()
    while pending:
        name = pending.pop()
        if name not in schemas:
            schemas.add(name)
            pending += _referenced(spec["components"]["schemas"][name])
    assert len(schemas) >= 20
    for name in schemas:
        for field, prop in spec["components"]["schemas"][name].get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field} has no description"
            assert prop.get("examples"), f"{name}.{field} has no examples"


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/ventas/v2/customers/7/transactions", {"offset": 2**63}, 422, "invalid_request"),
        (f"/ventas/v2/customers/{10**30}/transactions", {}, 404, "unknown_customer"),
        (f"/logistica/v1/shipments/{10**30}", {}, 404, "unknown_order"),
        ("/finanzas/v1/accounting-reports", {"month": "9999-12"}, 404, "no_data"),
        ("/finanzas/v1/accounting-reports", {"month": "0000-01"}, 422, "invalid_request"),
        ("/ventas/v2/revenue-trend", {"start_date": "0001-01-01", "end_date": "9999-12-31"}, 400,
         "date_range_too_long"),
        ("/producto/v1/products", {"min_price_usd": "nan"}, 422, "invalid_request"),
    ],
)  # fmt: skip
def test_extreme_inputs_get_a_clear_error_never_a_500(
    mesh: Path, api_key: Callable[[str], str], path: str, params: dict, status: int, code: str
) -> None:
    client = TestClient(
        create_app(),
        headers={"X-API-Key": api_key("platform-admin")},
        raise_server_exceptions=False,
    )

    assert_error(client.get(path, params=params), status, code)


def test_gold_table_missing_a_contract_column_is_503_not_500(
    data_dir: Path, api_key: Callable[[str], str]
) -> None:
    stale = pl.DataFrame({"product_id": [1], "name": ["Kiri gloss"], "category": ["beauty"]})
    storage.write(stale, get_settings().table_path("producto", "gold", "catalog"))
    client = TestClient(
        create_app(),
        headers={"X-API-Key": api_key("platform-admin")},
        raise_server_exceptions=False,
    )

    body = assert_error(client.get("/producto/v1/products"), 503, "product_out_of_contract")
    assert "mesh run --domain producto --full-refresh" in body["message"]
    assert str(data_dir) not in body["message"]


def test_empty_product_says_so_in_the_404(data_dir: Path, api_key: Callable[[str], str]) -> None:
    contract = contract_for("producto.pricing_history")
    empty = pl.DataFrame(schema={c.name: c.physical_type for c in contract.columns})
    storage.write(empty, get_settings().table_path("producto", "gold", "pricing_history"))
    client = TestClient(create_app(), headers={"X-API-Key": api_key("platform-admin")})

    body = assert_error(client.get("/producto/v1/products/1/prices"), 404, "unknown_product")
    assert "empty" in body["message"] and "mesh build" in body["message"]


# ---------------------------------------------------------------- ventas


def test_region_is_an_enum_in_openapi_defaulting_to_all(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()

    for path in (
        "/ventas/v2/daily-revenue",
        "/ventas/v2/revenue-trend",
        "/ventas/v1/daily-revenue",
    ):
        (region,) = [p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == "region"]
        assert region["schema"]["enum"] == ["LATAM", "NA", "EU", "APAC", "ALL"]
        assert region["schema"]["default"] == "ALL"


def test_revenue_trend_sums_every_region_per_day(client: TestClient) -> None:
    response = client.get(
        "/ventas/v2/revenue-trend", params={"start_date": "2024-01-15", "end_date": "2024-01-18"}
    )

    assert response.status_code == 200
    assert response.json() == {
        "region": "ALL",
        "start_date": "2024-01-15",
        "end_date": "2024-01-18",
        "items": [
            {
                "date": "2024-01-15",
                "revenue_gross": 375.25,
                "revenue_net": 355.25,
                "transactions_count": 38,
                "refunds_count": 4,
                "currency": "USD",
                "calculated_at": CALC_LATE_ISO,
            },
            {
                "date": "2024-01-16",
                "revenue_gross": 170.0,
                "revenue_net": 155.5,
                "transactions_count": 17,
                "refunds_count": 2,
                "currency": "USD",
                "calculated_at": CALC_ISO,
            },
            {
                "date": "2024-01-18",
                "revenue_gross": 70.0,
                "revenue_net": 70.0,
                "transactions_count": 7,
                "refunds_count": 0,
                "currency": "USD",
                "calculated_at": CALC_ISO,
            },
        ],
    }


def test_revenue_trend_of_one_region(client: TestClient) -> None:
    body = client.get(
        "/ventas/v2/revenue-trend",
        params={"start_date": "2024-01-01", "end_date": "2024-01-16", "region": "LATAM"},
    ).json()

    assert body["region"] == "LATAM"
    assert [(i["date"], i["revenue_gross"]) for i in body["items"]] == [
        ("2024-01-15", 100.0),
        ("2024-01-16", 110.0),
    ]


def test_revenue_trend_refuses_start_after_end(client: TestClient) -> None:
    response = client.get(
        "/ventas/v2/revenue-trend", params={"start_date": "2024-01-18", "end_date": "2024-01-15"}
    )

    body = assert_error(response, 400, "invalid_date_range")
    assert body["details"] == {"start_date": "2024-01-18", "end_date": "2024-01-15"}


def test_revenue_trend_refuses_more_than_366_days(client: TestClient) -> None:
    ok = client.get(
        "/ventas/v2/revenue-trend", params={"start_date": "2023-01-16", "end_date": "2024-01-16"}
    )
    too_long = client.get(
        "/ventas/v2/revenue-trend", params={"start_date": "2023-01-15", "end_date": "2024-01-16"}
    )

    assert ok.status_code == 200
    body = assert_error(too_long, 400, "date_range_too_long")
    assert body["details"]["days"] == 367 and body["details"]["max_days"] == 366
    assert "366" in body["message"]


def test_revenue_trend_without_data_is_404_with_the_available_range(client: TestClient) -> None:
    response = client.get(
        "/ventas/v2/revenue-trend",
        params={"start_date": "2023-01-01", "end_date": "2023-01-31"},
    )

    body = assert_error(response, 404, "no_data")
    assert "2024-01-15" in body["message"] and "2024-01-18" in body["message"]
    assert body["details"]["available_from"] == "2024-01-15"


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        (
            {"start_date": "2024-01-15", "end_date": "2024-01-16", "region": "MARS"},
            400,
            "unknown_region",
        ),
        ({"start_date": "2024-02-30", "end_date": "2024-03-01"}, 422, "invalid_request"),
        ({"start_date": "2024-01-15"}, 422, "invalid_request"),
    ],
)
def test_revenue_trend_bad_parameters(
    client: TestClient, params: dict, status: int, code: str
) -> None:
    assert_error(client.get("/ventas/v2/revenue-trend", params=params), status, code)


def test_customer_transactions_newest_first_without_personal_data(client: TestClient) -> None:
    response = client.get("/ventas/v2/customers/7/transactions", params={"limit": 1})

    assert response.status_code == 200
    assert response.json() == {
        "items": [
            {
                "order_id": 14,
                "order_ts": "2024-01-15T08:00:00Z",
                "order_date": "2024-01-15",
                "region": "EU",
                "currency": "EUR",
                "payment_method": "wallet",
                "basket_size": 1,
                "amount": 92.0,
                "amount_usd": 100.0,
                "status": "completed",
                "refunded": True,
                "refund_amount_usd": 100.0,
                "calculated_at": CALC_ISO,
            }
        ],
        "total": 4,
        "limit": 1,
        "offset": 0,
        "next_offset": 1,
    }
    pii = set(contract_for("ventas.customer_transaction_history").pii_columns)
    assert not (pii | PERSONAL | {"customer_id", "ingested_at"}) & set(response.json()["items"][0])


def test_customer_transaction_pages_cover_every_order_once(client: TestClient) -> None:
    items = all_pages(client, "/ventas/v2/customers/7/transactions", {}, limit=3)

    # Orders 12 and 13 share a timestamp: the order id breaks the tie.
    assert [item["order_id"] for item in items] == [14, 13, 12, 11]


def test_unknown_customer_transactions_is_404_with_the_id_range(client: TestClient) -> None:
    body = assert_error(client.get("/ventas/v2/customers/42/transactions"), 404, "unknown_customer")

    assert body["details"] == {"customer_id": 42, "min_customer_id": 7, "max_customer_id": 9}
    assert_error(client.get("/ventas/v2/customers/abc/transactions"), 422, "invalid_request")


def test_v1_daily_revenue_has_the_old_field_names_and_deprecation_headers(
    client: TestClient,
) -> None:
    response = client.get("/ventas/v1/daily-revenue", params={"date": "2024-01-15", "region": "NA"})

    assert response.status_code == 200
    assert response.json() == {
        "date": "2024-01-15",
        "items": [
            {
                "date": "2024-01-15",
                "region": "NA",
                "total": 200.0,
                "revenue_net": 195.0,
                "transactions_count": 20,
                "currency": "USD",
                "calculated_at": CALC_ISO,
            }
        ],
    }
    assert response.headers["Deprecation"] == "true"
    assert response.headers["Link"] == '</ventas/v2/daily-revenue>; rel="successor-version"'
    sunset = parsedate_to_datetime(response.headers["Sunset"])
    months = V1_DEPRECATED_ON.month - 1 + 6
    assert sunset == datetime(
        V1_DEPRECATED_ON.year + months // 12, months % 12 + 1, V1_DEPRECATED_ON.day, tzinfo=UTC
    )
    assert response.headers["Sunset"].endswith(" GMT")
    assert response.headers["X-Data-Version"] == "0"


def test_v1_serves_the_same_rows_as_v2(client: TestClient) -> None:
    v1 = client.get("/ventas/v1/daily-revenue", params={"date": "2024-01-15"}).json()
    v2 = client.get("/ventas/v2/daily-revenue", params={"date": "2024-01-15"}).json()

    assert [(i["region"], i["total"]) for i in v1["items"]] == [
        (i["region"], i["revenue_gross"]) for i in v2["items"]
    ]
    assert (
        "Deprecation"
        not in client.get("/ventas/v2/daily-revenue", params={"date": "2024-01-15"}).headers
    )


def test_v1_errors_match_v2(client: TestClient) -> None:
    params = {"date": "2024-01-15", "region": "MARS"}
    assert_error(client.get("/ventas/v1/daily-revenue", params=params), 400, "unknown_region")
    missing = client.get("/ventas/v1/daily-revenue", params={"date": "2023-01-01"})
    assert_error(missing, 404, "no_data")


def test_v1_is_marked_deprecated_in_openapi(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    v1 = paths["/ventas/v1/daily-revenue"]["get"]
    assert v1["deprecated"] is True
    assert set(v1["responses"]["200"]["headers"]) == {"Deprecation", "Sunset", "Link"}
    assert v1["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/DailyRevenueV1Response"
    )
    assert "deprecated" not in paths["/ventas/v2/daily-revenue"]["get"]


# ---------------------------------------------------------------- logistica


def test_shipments_of_an_order_sorted_by_shipment(client: TestClient) -> None:
    response = client.get("/logistica/v1/shipments/100")

    assert response.status_code == 200
    assert response.json() == {
        "order_id": 100,
        "items": [
            {
                "shipment_id": 501,
                "region": "EU",
                "warehouse_id": 1,
                "carrier": "PostCo",
                "status": "delivered",
                "promised_ts": "2024-01-18T00:00:00Z",
                "shipped_ts": "2024-01-16T00:00:00Z",
                "delivered_ts": "2024-01-17T12:00:00Z",
                "is_late": False,
                "delivery_days": 1.5,
                "return_reason": None,
                "updated_at": "2024-01-17T12:00:00Z",
                "calculated_at": CALC_ISO,
            },
            {
                "shipment_id": 502,
                "region": "EU",
                "warehouse_id": 2,
                "carrier": "FastShip",
                "status": "shipped",
                "promised_ts": "2024-01-20T00:00:00Z",
                "shipped_ts": "2024-01-17T00:00:00Z",
                "delivered_ts": None,
                "is_late": None,
                "delivery_days": None,
                "return_reason": None,
                "updated_at": "2024-01-17T00:00:00Z",
                "calculated_at": CALC_ISO,
            },
        ],
    }


def test_unknown_order_is_404_with_the_id_range(client: TestClient) -> None:
    body = assert_error(client.get("/logistica/v1/shipments/7"), 404, "unknown_order")

    assert body["details"] == {"order_id": 7, "min_order_id": 100, "max_order_id": 101}
    assert_error(client.get("/logistica/v1/shipments/x1"), 422, "invalid_request")


def test_delivery_performance_of_a_window_by_date_then_region(client: TestClient) -> None:
    body = client.get(
        "/logistica/v1/delivery-performance",
        params={"start_date": "2024-01-15", "end_date": "2024-01-16"},
    ).json()

    assert (body["region"], body["start_date"], body["end_date"]) == (
        "ALL",
        "2024-01-15",
        "2024-01-16",
    )
    assert [(i["date"], i["region"]) for i in body["items"]] == [
        ("2024-01-15", "EU"),
        ("2024-01-15", "NA"),
        ("2024-01-16", "NA"),
    ]
    assert body["items"][0] == {
        "date": "2024-01-15",
        "region": "EU",
        "shipments_delivered": 20,
        "on_time_rate": 0.8,
        "avg_delivery_days": 3.0,
        "late_count": 4,
        "returns_count": 2,
        "calculated_at": CALC_ISO,
    }


def test_delivery_performance_of_one_day_and_region(client: TestClient) -> None:
    body = client.get(
        "/logistica/v1/delivery-performance", params={"start_date": "2024-01-15", "region": "NA"}
    ).json()

    assert body["end_date"] == "2024-01-15"
    assert [(i["date"], i["region"], i["shipments_delivered"]) for i in body["items"]] == [
        ("2024-01-15", "NA", 40)
    ]


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"start_date": "2024-01-16", "end_date": "2024-01-15"}, 400, "invalid_date_range"),
        ({"start_date": "2023-01-01", "end_date": "2024-01-16"}, 400, "date_range_too_long"),
        ({"start_date": "2024-01-15", "region": "mars"}, 400, "unknown_region"),
        ({"start_date": "2024-01-17"}, 404, "no_data"),
        ({"start_date": "2024-01-16", "region": "EU"}, 404, "no_data"),
        ({"start_date": "yesterday"}, 422, "invalid_request"),
        ({}, 422, "invalid_request"),
    ],
)
def test_delivery_performance_errors(
    client: TestClient, params: dict, status: int, code: str
) -> None:
    body = assert_error(
        client.get("/logistica/v1/delivery-performance", params=params), status, code
    )
    if code == "no_data":
        assert body["details"]["available_from"] == "2024-01-15"
        assert body["details"]["available_to"] == "2024-01-16"


# ---------------------------------------------------------------- producto


def test_catalog_first_product_exactly(client: TestClient) -> None:
    body = client.get("/producto/v1/products", params={"limit": 1}).json()

    assert body == {
        "items": [
            {
                "product_id": 1,
                "name": "Kiri gloss",
                "category": "beauty",
                "subcategory": "makeup",
                "brand": "Kiri",
                "launch_date": "2023-05-01",
                "current_price_usd": 10.0,
                "price_updated_at": "2024-01-05T00:00:00Z",
                "avg_rating": 3.8,
                "total_reviews": 21,
                "calculated_at": CALC_ISO,
            }
        ],
        "total": 5,
        "limit": 1,
        "offset": 0,
        "next_offset": 1,
    }


@pytest.mark.parametrize(
    ("params", "ids"),
    [
        ({}, [1, 2, 3, 4, 5]),
        ({"category": "beauty"}, [1, 2, 5]),
        ({"brand": "Kiri"}, [1, 3, 5]),
        ({"category": "beauty", "subcategory": "makeup", "brand": "Kiri"}, [1, 5]),
        ({"min_price_usd": 20, "max_price_usd": 55}, [2, 3, 5]),
        ({"category": "home", "brand": "Polar"}, []),
    ],
)
def test_catalog_filters_and_pages(client: TestClient, params: dict, ids: list[int]) -> None:
    items = all_pages(client, "/producto/v1/products", params, limit=2)

    assert [item["product_id"] for item in items] == ids


def test_catalog_unknown_category_is_404_listing_the_categories(client: TestClient) -> None:
    body = assert_error(
        client.get("/producto/v1/products", params={"category": "garden"}), 404, "unknown_category"
    )

    assert body["details"]["valid_category_values"] == ["beauty", "home"]
    assert "beauty, home" in body["message"]
    unknown_brand = client.get("/producto/v1/products", params={"brand": "Acme"})
    assert assert_error(unknown_brand, 404, "unknown_brand")["details"]["brand"] == "Acme"


def test_catalog_price_range_errors(client: TestClient) -> None:
    reversed_range = client.get(
        "/producto/v1/products", params={"min_price_usd": 50, "max_price_usd": 10}
    )
    assert_error(reversed_range, 400, "invalid_price_range")
    negative = client.get("/producto/v1/products", params={"min_price_usd": -1})
    assert_error(negative, 422, "invalid_request")


def test_price_history_of_a_product_oldest_first(client: TestClient) -> None:
    response = client.get("/producto/v1/products/1/prices")

    assert response.status_code == 200
    assert response.json() == {
        "product_id": 1,
        "items": [
            {
                "valid_from": "2023-01-01T00:00:00Z",
                "valid_to": "2023-06-01T00:00:00Z",
                "price_usd": 11.0,
                "change_reason": "initial",
                "is_current": False,
                "calculated_at": CALC_ISO,
            },
            {
                "valid_from": "2023-06-01T00:00:00Z",
                "valid_to": "2024-01-05T00:00:00Z",
                "price_usd": 12.0,
                "change_reason": "adjustment",
                "is_current": False,
                "calculated_at": CALC_ISO,
            },
            {
                "valid_from": "2024-01-05T00:00:00Z",
                "valid_to": None,
                "price_usd": 10.0,
                "change_reason": "category_repricing",
                "is_current": True,
                "calculated_at": CALC_ISO,
            },
        ],
    }


def test_unknown_product_prices_is_404_with_the_id_range(client: TestClient) -> None:
    body = assert_error(client.get("/producto/v1/products/99/prices"), 404, "unknown_product")

    assert body["details"] == {"product_id": 99, "min_product_id": 1, "max_product_id": 2}


# ---------------------------------------------------------------- marketing


def test_campaign_metrics_of_one_campaign_exactly(client: TestClient) -> None:
    body = client.get("/marketing/v1/campaign-metrics", params={"campaign_id": 2}).json()

    assert body == {
        "items": [
            {
                "campaign_id": 2,
                "name": "beauty-push-2",
                "channel": "push",
                "target_category": "beauty",
                "start_date": "2024-01-08",
                "end_date": "2024-01-20",
                "budget_usd": 2500.0,
                "sends": 500,
                "opens": 100,
                "clicks": 25,
                "conversions": 5,
                "open_rate": 0.2,
                "click_rate": 0.05,
                "conversion_rate": 0.01,
                "attributed_revenue_usd": 350.0,
                "calculated_at": CALC_ISO,
            }
        ],
        "total": 1,
        "limit": 100,
        "offset": 0,
        "next_offset": None,
    }


@pytest.mark.parametrize(
    ("params", "ids"),
    [
        ({}, [1, 2, 3]),
        ({"start_date": "2024-01-09", "end_date": "2024-01-31"}, [1, 2]),
        ({"start_date": "2024-01-11", "end_date": "2024-01-31"}, [2]),
        ({"start_date": "2024-02-10"}, [3]),
        ({"end_date": "2024-01-07"}, [1]),
        ({"channel": "sms"}, [3]),
        ({"campaign_id": 1, "start_date": "2024-02-01"}, []),
    ],
)
def test_campaign_metrics_filters_and_pages(
    client: TestClient, params: dict, ids: list[int]
) -> None:
    items = all_pages(client, "/marketing/v1/campaign-metrics", params, limit=1)

    assert [item["campaign_id"] for item in items] == ids


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"campaign_id": 9}, 404, "unknown_campaign"),
        ({"start_date": "2024-02-01", "end_date": "2024-01-01"}, 400, "invalid_date_range"),
        ({"channel": "fax"}, 422, "invalid_request"),
        ({"start_date": "01/02/2024"}, 422, "invalid_request"),
    ],
)
def test_campaign_metrics_errors(client: TestClient, params: dict, status: int, code: str) -> None:
    body = assert_error(client.get("/marketing/v1/campaign-metrics", params=params), status, code)
    if code == "unknown_campaign":
        assert body["details"] == {"campaign_id": 9, "min_campaign_id": 1, "max_campaign_id": 3}


def test_customer_segments_by_segment_and_pages(client: TestClient) -> None:
    items = all_pages(client, "/marketing/v1/customer-segments", {"segment": "at_risk"}, limit=2)

    assert [item["customer_id"] for item in items] == [2, 3, 5]
    assert items[0] == {
        "customer_id": 2,
        "segment": "at_risk",
        "recency_days": 45,
        "orders_90d": 2,
        "spend_90d_usd": 75.5,
        "emails_30d": 3,
        "open_rate_30d": 0.0,
        "calculated_at": CALC_ISO,
    }
    everyone = all_pages(client, "/marketing/v1/customer-segments", {}, limit=2)
    assert [item["customer_id"] for item in everyone] == [1, 2, 3, 4, 5]
    assert everyone[3]["recency_days"] is None


def test_customer_segments_unknown_segment_is_422_naming_the_segments(client: TestClient) -> None:
    response = client.get("/marketing/v1/customer-segments", params={"segment": "vip"})

    body = assert_error(response, 422, "invalid_request")
    assert "at_risk" in body["message"]


# ---------------------------------------------------------------- finanzas


def test_accounting_report_of_a_month(client: TestClient) -> None:
    response = client.get("/finanzas/v1/accounting-reports", params={"month": "2024-01"})

    assert response.status_code == 200
    body = response.json()
    assert (body["month"], body["region"]) == ("2024-01", "ALL")
    assert body["totals"] == [
        {
            "region": "LATAM",
            "days_count": 2,
            "currency": "USD",
            "revenue_gross_usd": 300.0,
            "chargebacks_usd": 5.0,
            "payments_count": 33,
            "failed_payments_count": 3,
            "ventas_revenue_gross_usd": 290.0,
            "difference_pct": 3.4483,
            "unmatched_payments_usd": 10.0,
            "calculated_at": CALC_LATE_ISO,
        },
        {
            "region": "NA",
            "days_count": 1,
            "currency": "USD",
            "revenue_gross_usd": 50.0,
            "chargebacks_usd": 1.5,
            "payments_count": 6,
            "failed_payments_count": 1,
            "ventas_revenue_gross_usd": 0.0,
            "difference_pct": 100.0,
            "unmatched_payments_usd": 50.0,
            "calculated_at": CALC_ISO,
        },
    ]
    assert [(d["date"], d["region"]) for d in body["days"]] == [
        ("2024-01-30", "LATAM"),
        ("2024-01-31", "LATAM"),
        ("2024-01-31", "NA"),
    ]
    assert body["days"][1]["difference_pct"] == 5.2632


def test_accounting_report_of_one_region(client: TestClient) -> None:
    body = client.get(
        "/finanzas/v1/accounting-reports", params={"month": "2024-02", "region": "LATAM"}
    ).json()

    assert body["region"] == "LATAM"
    assert [(t["region"], t["revenue_gross_usd"]) for t in body["totals"]] == [("LATAM", 70.0)]
    assert [d["date"] for d in body["days"]] == ["2024-02-01"]


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"month": "2023-12"}, 404, "no_data"),
        ({"month": "2024-02", "region": "NA"}, 404, "no_data"),
        ({"month": "2024-01", "region": "MOON"}, 400, "unknown_region"),
        ({"month": "2024-13"}, 422, "invalid_request"),
        ({"month": "2024-1"}, 422, "invalid_request"),
        ({}, 422, "invalid_request"),
    ],
)
def test_accounting_report_errors(client: TestClient, params: dict, status: int, code: str) -> None:
    body = assert_error(client.get("/finanzas/v1/accounting-reports", params=params), status, code)
    if code == "no_data":
        assert "2024-01-30" in body["message"] and "2024-02-01" in body["message"]


def test_fraud_scores_newest_day_first_then_by_customer(finanzas: TestClient) -> None:
    items = all_pages(finanzas, "/finanzas/v1/fraud-scores", {}, limit=2)

    assert [(i["date"], i["customer_id"]) for i in items] == [
        ("2024-01-16", 7),
        ("2024-01-16", 8),
        ("2024-01-15", 7),
        ("2024-01-15", 8),
        ("2024-01-14", 9),
    ]
    assert items[3] == {
        "customer_id": 8,
        "date": "2024-01-15",
        "payments_count": 3,
        "avg_risk_score": 0.7,
        "max_risk_score": 0.95,
        "chargebacks_90d": 1,
        "fraud_flag": True,
        "calculated_at": CALC_ISO,
    }


@pytest.mark.parametrize(
    ("params", "keys"),
    [
        ({"customer_id": 7}, [("2024-01-16", 7), ("2024-01-15", 7)]),
        (
            {"start_date": "2024-01-15", "end_date": "2024-01-15"},
            [("2024-01-15", 7), ("2024-01-15", 8)],
        ),
        ({"flagged_only": True}, [("2024-01-16", 7), ("2024-01-15", 8)]),
        ({"customer_id": 9, "start_date": "2024-01-15"}, []),
    ],
)
def test_fraud_scores_filters(finanzas: TestClient, params: dict, keys: list) -> None:
    items = all_pages(finanzas, "/finanzas/v1/fraud-scores", params, limit=10)

    assert [(i["date"], i["customer_id"]) for i in items] == keys


def test_fraud_scores_errors(finanzas: TestClient) -> None:
    unknown = assert_error(
        finanzas.get("/finanzas/v1/fraud-scores", params={"customer_id": 1}),
        404,
        "unknown_customer",
    )
    assert unknown["details"] == {"customer_id": 1, "min_customer_id": 7, "max_customer_id": 9}
    backwards = {"start_date": "2024-01-16", "end_date": "2024-01-14"}
    assert_error(
        finanzas.get("/finanzas/v1/fraud-scores", params=backwards), 400, "invalid_date_range"
    )


@pytest.mark.parametrize("account", ["platform-admin", "marketing-service"])
def test_fraud_scores_are_restricted_to_finanzas_accounts(
    mesh: Path, api_key: Callable[[str], str], account: str
) -> None:
    response = TestClient(create_app(), headers={"X-API-Key": api_key(account)}).get(
        "/finanzas/v1/fraud-scores"
    )

    body = assert_error(response, 403, "restricted_product")
    assert body["details"] == {"product": "finanzas.fraud_scores"}
    assert "X-Data-Version" not in response.headers


def test_customer_lookup_is_the_same_from_the_memory_copy_and_the_scan(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakehouse import routes

    path = "/ventas/v2/customers/7/transactions"
    copied = client.get(path, params={"limit": 3}).json()
    missing = client.get("/ventas/v2/customers/42/transactions").json()
    monkeypatch.setattr(routes, "MAX_INDEXED_ROWS", 0)  # force the Delta scan path

    assert client.get(path, params={"limit": 3}).json() == copied
    assert client.get("/ventas/v2/customers/42/transactions").json() == missing
    assert copied["total"] == 4 and missing["error_code"] == "unknown_customer"
