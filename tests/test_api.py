from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from app.api import create_app, domain_api_modules
from lakehouse import __version__, storage
from lakehouse.config import get_settings

CALCULATED_AT = datetime(2024, 1, 16, 2, 30, tzinfo=UTC)


def gold_daily_revenue() -> pl.DataFrame:
    """Two days of ventas gold daily revenue: four regions on Jan 15, two on Jan 16."""
    return pl.DataFrame(
        {
            "date": [date(2024, 1, 15)] * 4 + [date(2024, 1, 16)] * 2,
            "region": ["LATAM", "NA", "EU", "APAC", "LATAM", "EU"],
            "revenue_gross": [125000.5, 98000.0, 87000.25, 45000.0, 130000.0, 90000.0],
            "revenue_net": [118000.3, 95000.0, 85000.0, 44000.0, 121000.0, 88000.0],
            "transactions_count": [1543, 1200, 1100, 600, 1600, 1150],
            "refunds_count": [23, 10, 12, 4, 30, 9],
            "currency": ["USD"] * 6,
            "calculated_at": [CALCULATED_AT] * 6,
        },
        schema_overrides={"calculated_at": pl.Datetime("us", "UTC")},
    )


@pytest.fixture
def client(data_dir: Path, api_key: Callable[[str], str]) -> TestClient:
    """A platform-admin client of the mesh app; ventas gold holds gold_daily_revenue()."""
    storage.write(
        gold_daily_revenue(), get_settings().table_path("ventas", "gold", "daily_revenue")
    )
    return TestClient(create_app(), headers={"X-API-Key": api_key("platform-admin")})


def assert_error(body: dict, error_code: str) -> None:
    assert set(body) == {"error_code", "message", "details"}
    assert body["error_code"] == error_code
    assert isinstance(body["message"], str) and body["message"]


def test_daily_revenue_for_one_region(client: TestClient) -> None:
    response = client.get(
        "/ventas/v2/daily-revenue", params={"date": "2024-01-15", "region": "LATAM"}
    )

    assert response.status_code == 200
    assert response.json() == {
        "date": "2024-01-15",
        "items": [
            {
                "date": "2024-01-15",
                "region": "LATAM",
                "revenue_gross": 125000.5,
                "revenue_net": 118000.3,
                "transactions_count": 1543,
                "refunds_count": 23,
                "currency": "USD",
                "calculated_at": "2024-01-16T02:30:00Z",
            }
        ],
    }


def test_daily_revenue_for_all_regions_is_sorted_by_region(client: TestClient) -> None:
    response = client.get("/ventas/v2/daily-revenue", params={"date": "2024-01-15"})

    assert response.status_code == 200
    body = response.json()
    assert body["date"] == "2024-01-15"
    assert [item["region"] for item in body["items"]] == ["APAC", "EU", "LATAM", "NA"]
    assert sum(item["transactions_count"] for item in body["items"]) == 4443
    all_alias = client.get(
        "/ventas/v2/daily-revenue", params={"date": "2024-01-15", "region": "ALL"}
    )
    assert all_alias.json() == body


def test_unknown_region_is_400_naming_the_valid_regions(client: TestClient) -> None:
    response = client.get(
        "/ventas/v2/daily-revenue", params={"date": "2024-01-15", "region": "MARS"}
    )

    assert response.status_code == 400
    body = response.json()
    assert_error(body, "unknown_region")
    assert "'MARS'" in body["message"]
    assert all(region in body["message"] for region in ("LATAM", "NA", "EU", "APAC"))
    assert body["details"] == {"region": "MARS", "valid_regions": ["LATAM", "NA", "EU", "APAC"]}


def test_bad_date_is_422_in_the_shared_error_shape(client: TestClient) -> None:
    response = client.get("/ventas/v2/daily-revenue", params={"date": "2024-13-45"})

    assert response.status_code == 422
    body = response.json()
    assert_error(body, "invalid_request")
    assert "query.date" in body["message"]
    assert body["details"][0]["field"] == "query.date"
    assert body["details"][0]["input"] == "2024-13-45"


def test_missing_date_parameter_is_422(client: TestClient) -> None:
    response = client.get("/ventas/v2/daily-revenue")

    assert response.status_code == 422
    assert_error(response.json(), "invalid_request")


def test_date_without_rows_is_404_stating_the_available_range(client: TestClient) -> None:
    response = client.get("/ventas/v2/daily-revenue", params={"date": "2023-06-01"})

    assert response.status_code == 404
    body = response.json()
    assert_error(body, "no_data")
    assert "2024-01-15" in body["message"] and "2024-01-16" in body["message"]
    assert body["details"]["available_from"] == "2024-01-15"
    assert body["details"]["available_to"] == "2024-01-16"


def test_region_without_rows_that_day_is_404(client: TestClient) -> None:
    response = client.get("/ventas/v2/daily-revenue", params={"date": "2024-01-16", "region": "NA"})

    assert response.status_code == 404
    body = response.json()
    assert_error(body, "no_data")
    assert "region NA on 2024-01-16" in body["message"]


def test_missing_gold_table_is_503_telling_to_run_mesh_build(
    data_dir: Path, api_key: Callable[[str], str]
) -> None:
    response = TestClient(create_app(), headers={"X-API-Key": api_key("ventas-service")}).get(
        "/ventas/v2/daily-revenue", params={"date": "2024-01-15"}
    )

    assert response.status_code == 503
    body = response.json()
    assert_error(body, "product_unavailable")
    assert "mesh build" in body["message"]
    assert str(data_dir) not in response.text


def test_health(client: TestClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}


def test_openapi_lists_the_discovered_domain_routes(client: TestClient) -> None:
    assert "domains.ventas.api" in domain_api_modules()
    spec = client.get("/openapi.json").json()

    assert spec["info"] == {
        "title": "Mesh data products",
        "version": __version__,
        "description": "Data product APIs published by the domains of the mesh.",
    }
    operation = spec["paths"]["/ventas/v2/daily-revenue"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"date", "region", "require_fresh"}
    assert {"200", "400", "401", "403", "404", "422", "429", "503"} <= set(operation["responses"])
    assert operation["security"] == [{"ApiKeyAuth": []}]
    assert spec["components"]["securitySchemes"]["ApiKeyAuth"]["name"] == "X-API-Key"
    assert client.get("/docs").status_code == 200


def test_unknown_route_is_404_in_the_shared_error_shape(client: TestClient) -> None:
    response = client.get("/ventas/v9/nothing")

    assert response.status_code == 404
    assert_error(response.json(), "not_found")


def test_unexpected_error_is_500_without_traceback(data_dir: Path) -> None:
    app = create_app()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    response = TestClient(app, raise_server_exceptions=False).get("/boom")

    assert response.status_code == 500
    assert_error(response.json(), "internal_error")
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text
