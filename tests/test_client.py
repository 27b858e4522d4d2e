"""The typed client agrees with the committed OpenAPI contracts and reads the real app."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
import yaml

from app.client import ENDPOINTS, MeshApiError, MeshClient
from domains.ventas.api import DailyRevenueResponse
from lakehouse import openapi
from lakehouse.registry import load_registry
from tests.test_domain_apis import build_gold_tables


def _operation(method: str, path: str) -> dict:
    domain = load_registry()[path.split("/")[1]]
    document = yaml.safe_load(openapi.contract_path(domain).read_text())
    assert path in document["paths"], f"{path} is not in {domain.name}'s committed contract"
    return document["paths"][path][method]


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_every_client_method_matches_a_committed_operation(name: str) -> None:
    method, path = ENDPOINTS[name]
    operation = _operation(method, path)
    documented = {p["name"] for p in operation.get("parameters", [])}
    signature = inspect.signature(getattr(MeshClient, name))
    named = {
        p.name
        for p in signature.parameters.values()
        if p.name != "self" and p.kind is not p.VAR_KEYWORD
    }

    assert named <= documented, f"{name} sends {named - documented}, not in the contract"
    assert not operation.get("deprecated"), f"{name} calls a deprecated operation"


@pytest.fixture
def mesh(data_dir: Path, api_key: Callable[[str], str]) -> MeshClient:
    build_gold_tables()
    return MeshClient.in_process(api_key("platform-admin"))


def test_client_returns_typed_answers(mesh: MeshClient) -> None:
    day = mesh.daily_revenue(date(2024, 1, 15), region="EU")

    assert isinstance(day, DailyRevenueResponse)
    assert [item.region for item in day.items] == ["EU"]
    assert mesh.last_data_version == 0
    trend = mesh.revenue_trend(date(2024, 1, 15), date(2024, 1, 16))
    assert [point.date for point in trend.items] == [date(2024, 1, 15), date(2024, 1, 16)]
    assert [t.order_id for t in mesh.iter_customer_transactions(7, page_size=2)] == [
        14,
        13,
        12,
        11,
    ]
    shipments = mesh.shipments(100)
    assert shipments.order_id == 100 and len(shipments.items) == 2
    assert mesh.catalog(limit=2).next_offset == 2
    assert mesh.product_prices(1).product_id == 1
    assert mesh.campaign_metrics(campaign_id=2).items[0].campaign_id == 2
    assert {c.segment for c in mesh.customer_segments(segment="at_risk").items} == {"at_risk"}


def test_client_raises_the_shared_error_body(mesh: MeshClient) -> None:
    with pytest.raises(MeshApiError) as unknown:
        mesh.daily_revenue(date(2024, 1, 15), region="MARS")
    with pytest.raises(MeshApiError) as restricted:
        mesh.fraud_scores()

    assert unknown.value.status_code == 400
    assert unknown.value.error_code == "unknown_region"
    assert "LATAM" in unknown.value.message
    assert restricted.value.status_code == 403
    assert restricted.value.error_code == "restricted_product"


def test_finanzas_reads_its_fraud_scores_page_by_page(
    data_dir: Path, api_key: Callable[[str], str]
) -> None:
    build_gold_tables()
    with MeshClient.in_process(api_key("finanzas-service")) as finanzas:
        scores = list(finanzas.iter_fraud_scores(page_size=2))
        total = finanzas.fraud_scores(limit=1).total

    assert len(scores) == total == 5
    assert [s.date for s in scores] == sorted((s.date for s in scores), reverse=True)
