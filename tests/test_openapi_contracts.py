"""The committed OpenAPI contract of each domain equals what the app serves, and is valid."""

from __future__ import annotations

import pytest
import yaml
from openapi_spec_validator import validate

from app.api import create_app
from lakehouse import openapi
from lakehouse.registry import load_registry

SPEC = create_app().openapi()
DOCUMENTS = openapi.served_documents(SPEC)
METHODS = {"get", "post", "put", "patch", "delete"}


def _committed(domain: str) -> dict:
    path = openapi.contract_path(load_registry()[domain])
    assert path.is_file(), f"{path} is missing; run `mesh contracts openapi` and commit it"
    return yaml.safe_load(path.read_text())


def test_every_domain_serves_an_api() -> None:
    assert sorted(DOCUMENTS) == sorted(load_registry().names())


@pytest.mark.parametrize("domain", sorted(DOCUMENTS))
def test_committed_openapi_equals_the_served_one(domain: str) -> None:
    assert _committed(domain) == yaml.safe_load(openapi.dump(DOCUMENTS[domain])), (
        f"the {domain} API changed; review it, then run `mesh contracts openapi` and commit "
        f"domains/{domain}/contracts/openapi.yaml"
    )


@pytest.mark.parametrize("domain", sorted(DOCUMENTS))
def test_committed_openapi_is_valid_and_describes_the_product(domain: str) -> None:
    document = _committed(domain)
    validate(document)
    registry_domain = load_registry()[domain]

    assert document["x-domain"] == domain
    assert document["x-owner"] == registry_domain.owner
    assert set(document["x-slo"]) >= {"availability", "latency_p99_ms", "freshness_max_seconds"}
    assert document["components"]["securitySchemes"]["ApiKeyAuth"]["name"] == "X-API-Key"
    for path, item in document["paths"].items():
        assert path.startswith(f"/{domain}/v"), f"{path} needs the /{domain}/v<major>/ prefix"
        for method, operation in item.items():
            if method not in METHODS:
                continue
            where = f"{method.upper()} {path}"
            assert operation["x-product"].split(".")[0] in (domain, "ml"), where
            assert operation["security"] == [{"ApiKeyAuth": []}], where
            assert {"401", "403", "429"} <= set(operation["responses"]), where
            assert operation.get("summary"), where


@pytest.mark.parametrize("domain", sorted(DOCUMENTS))
def test_response_schemas_carry_descriptions_and_examples(domain: str) -> None:
    schemas = _committed(domain)["components"]["schemas"]
    for name, schema in schemas.items():
        if name in {"ErrorBody", "HTTPValidationError", "ValidationError"}:
            continue
        for field, prop in schema.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field} has no description"
    examples = [
        prop
        for schema in schemas.values()
        for prop in schema.get("properties", {}).values()
        if "examples" in prop or "example" in prop
    ]
    assert examples, f"no example values in the {domain} API's schemas"


def test_drift_is_reported_for_a_changed_api() -> None:
    changed = yaml.safe_load(yaml.safe_dump(SPEC))
    first_path = next(p for p in changed["paths"] if p.startswith("/ventas/"))
    changed["paths"][first_path]["get"]["summary"] = "something else"

    assert openapi.drift(SPEC) == []
    assert openapi.drift(changed) == ["ventas"]
