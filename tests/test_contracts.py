from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandera.polars as pa
import polars as pl
import pytest
import yaml
from open_data_contract_standard.model import OpenDataContractStandard
from pandera.errors import SchemaErrors

from lakehouse.contracts import (
    ContractError,
    ContractViolation,
    cast_to_contract,
    check_contracts_match_registry,
    contract_for,
    load_contract,
    load_contracts,
    odcs_problems,
    pandera_schema,
    parse_dtype,
)
from lakehouse.registry import load_registry

REAL_DOMAINS = Path(__file__).resolve().parents[1] / "domains"
CONTRACT_FILES = sorted(REAL_DOMAINS.glob("*/contracts/*.odcs.yaml"))
DAILY_REVENUE = REAL_DOMAINS / "ventas" / "contracts" / "daily_revenue.odcs.yaml"
UTC_TS = pl.Datetime("us", "UTC")


def daily_revenue_raw() -> dict[str, Any]:
    """The parsed ventas.daily_revenue contract, free to mutate."""
    return copy.deepcopy(yaml.safe_load(DAILY_REVENUE.read_text()))


def write_contract(root: Path, raw: dict[str, Any], name: str = "daily_revenue") -> Path:
    """Write raw as root/ventas/contracts/<name>.odcs.yaml and return the path."""
    path = root / "ventas" / "contracts" / f"{name}.odcs.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def prop(raw: dict[str, Any], name: str) -> dict[str, Any]:
    """The schema property called name."""
    return next(p for p in raw["schema"][0]["properties"] if p["name"] == name)


def revenue_frame(**columns: list[Any]) -> pl.DataFrame:
    """Three valid daily_revenue rows, with `columns` replacing whole columns."""
    data: dict[str, list[Any]] = {
        "date": [date(2024, 1, 15)] * 3,
        "region": ["LATAM", "NA", "EU"],
        "revenue_gross": [125000.5, 90000.0, 0.0],
        "revenue_net": [118000.3, 91000.0, -20.0],
        "transactions_count": [1543, 900, 0],
        "refunds_count": [23, 4, 1],
        "currency": ["USD"] * 3,
        "calculated_at": [datetime(2024, 1, 15, 10, 30, tzinfo=UTC)] * 3,
    }
    data.update(columns)
    schema = {c.name: c.physical_type for c in contract_for("ventas.daily_revenue").columns}
    return pl.DataFrame(data, schema=schema)


def test_there_is_one_contract_file_per_registry_product() -> None:
    registry = load_registry(REAL_DOMAINS)
    expected = {f"{p.domain}/contracts/{p.name}.odcs.yaml" for p in registry.products()}
    assert {str(p.relative_to(REAL_DOMAINS)) for p in CONTRACT_FILES} == expected
    assert len(expected) == 16


@pytest.mark.parametrize("path", CONTRACT_FILES, ids=lambda p: p.stem.removesuffix(".odcs"))
def test_every_contract_is_valid_odcs_v3(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    model = OpenDataContractStandard.from_file(str(path))
    assert odcs_problems(raw) == []
    assert model.apiVersion == "v3.1.0"
    assert model.kind == "DataContract"
    assert model.status == "active"
    assert model.domain == path.parents[1].name
    assert model.description and model.description.purpose and model.description.usage
    [table] = model.schema_ or []
    assert table.physicalName == path.name.removesuffix(".odcs.yaml")
    for column in table.properties or []:
        assert column.description and column.logicalType and column.physicalType
        assert column.classification in ("public", "internal", "restricted")


def test_contracts_load_with_owner_sla_and_threshold_of_their_domain() -> None:
    contracts = load_contracts(REAL_DOMAINS)
    registry = load_registry(REAL_DOMAINS)
    assert sorted(contracts) == sorted(p.qualified_name for p in registry.products())
    check_contracts_match_registry(registry, contracts)
    for name, contract in contracts.items():
        domain = registry[contract.domain]
        assert contract.owner == domain.owner
        assert contract.sla == {
            "freshness": domain.slos.freshness,
            "latency": domain.slos.latency_p99,
            "availability": domain.slos.availability,
        }
        assert contract.column("calculated_at").physical_type == UTC_TS
        assert contract.column("calculated_at").required
        assert contract.pii_columns == []
        assert contract.version == ("2.1.0" if name == "ventas.daily_revenue" else "1.0.0")
        expected = 0.01 if name == "ventas.daily_revenue" else 0.05
        assert contract.quarantine_threshold == expected


def test_daily_revenue_contract_reads_types_keys_and_rules() -> None:
    contract = contract_for("ventas.daily_revenue")
    assert contract.primary_key == ["date", "region"]
    assert contract.sla["freshness"] == timedelta(minutes=20)
    assert contract.sla["latency"] == timedelta(minutes=15)
    assert contract.sla["availability"] == pytest.approx(0.999)
    region = contract.column("region")
    assert region.valid_values == ("LATAM", "NA", "EU", "APAC")
    assert region.primary_key and region.required and not region.pii
    gross, net = contract.column("revenue_gross"), contract.column("revenue_net")
    assert (gross.minimum, gross.min_inclusive, gross.maximum) == (0, True, None)
    assert net.minimum is None and net.physical_type == pl.Float64
    assert contract_for("logistica.delivery_performance").column("on_time_rate").maximum == 1
    price = contract_for("producto.catalog").column("current_price_usd")
    assert (price.minimum, price.min_inclusive) == (0, False)
    assert contract_for("finanzas.payment_transactions").column("attempt").physical_type == pl.Int8


def test_contract_for_an_unknown_product_suggests_the_closest() -> None:
    with pytest.raises(ContractError, match=r"did you mean 'ventas\.daily_revenue'"):
        contract_for("ventas.daily_revenue2")


@pytest.mark.parametrize("path", CONTRACT_FILES, ids=lambda p: p.stem.removesuffix(".odcs"))
def test_every_generated_schema_accepts_an_empty_batch_of_the_right_types(path: Path) -> None:
    contract = load_contract(path)
    empty = pl.DataFrame(schema={c.name: c.physical_type for c in contract.columns})
    assert pandera_schema(contract).validate(empty).is_empty()


def test_generated_schema_accepts_a_good_batch() -> None:
    schema = pandera_schema(contract_for("ventas.daily_revenue"))
    assert isinstance(schema, pa.DataFrameSchema)
    assert schema.validate(revenue_frame()).height == 3


@pytest.mark.parametrize(
    ("bad", "check"),
    [
        ({"revenue_gross": [1.0, None, 2.0]}, "not_nullable"),
        ({"region": ["LATAM", "MARS", "EU"]}, "valid_values:region"),
        ({"refunds_count": [1, -1, 0]}, "in_range:refunds_count"),
        ({"currency": ["USD", "EUR", "USD"]}, "valid_values:currency"),
        ({"region": ["LATAM", "NA", "NA"]}, "multiple_fields_uniqueness"),
    ],
    ids=["null_in_required", "invalid_region", "negative_count", "invalid_currency", "dup_key"],
)
def test_generated_schema_rejects_each_kind_of_bad_value(
    bad: dict[str, list[Any]], check: str
) -> None:
    schema = pandera_schema(contract_for("ventas.daily_revenue"))
    with pytest.raises(SchemaErrors) as info:
        schema.validate(revenue_frame(**bad), lazy=True)
    assert set(info.value.failure_cases["check"]) == {check}


def test_parse_dtype_reads_polars_names() -> None:
    assert parse_dtype("Datetime(us, UTC)") == UTC_TS
    assert parse_dtype("Datetime(ns)") == pl.Datetime("ns")
    assert parse_dtype("Int32") == pl.Int32
    with pytest.raises(ValueError, match="unknown 'Int65'"):
        parse_dtype("Int65")


def test_cast_to_contract_orders_and_casts_columns() -> None:
    contract = contract_for("ventas.daily_revenue")
    frame = revenue_frame().with_columns(pl.col("refunds_count").cast(pl.Int32)).reverse()
    cast = cast_to_contract(frame.with_columns(extra=pl.lit(1)), contract)
    assert cast.columns == contract.names
    assert cast.schema["refunds_count"] == pl.Int64
    with pytest.raises(ContractViolation, match=r"\['currency'\] are missing"):
        cast_to_contract(frame.drop("currency"), contract)


def _drop_team(raw: dict[str, Any]) -> None:
    del raw["team"]


def _set(name: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda raw: prop(raw, name).__setitem__(key, value)


def _threshold(value: Any) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        raw["customProperties"][0]["value"] = value

    return change


def _no_primary_key(raw: dict[str, Any]) -> None:
    for column in raw["schema"][0]["properties"]:
        column.pop("primaryKey", None)
        column.pop("primaryKeyPosition", None)


def _sql_rule(raw: dict[str, Any]) -> None:
    prop(raw, "revenue_gross")["quality"] = [{"type": "sql", "query": "SELECT 1", "mustBe": 0}]


def _no_freshness(raw: dict[str, Any]) -> None:
    raw["slaProperties"] = raw["slaProperties"][1:]


@pytest.mark.parametrize(
    ("change", "field", "fix"),
    [
        (_drop_team, "team.members", "role: owner"),
        (_set("date", "logicalType", "datetime"), "logicalType", "use one of string, integer"),
        (_set("date", "logicalType", "time"), "logicalType", "use one of string, integer"),
        (_set("date", "physicalType", "Int65"), "physicalType", "use one of Int8"),
        (_set("date", "physicalType", "String"), "physicalType", "polars dtype holding"),
        (_set("date", "requred", True), "properties[0]", "remove or rename it"),
        (_set("calculated_at", "physicalType", "Datetime(us)"), "timezone", "when physicalType"),
        (_no_primary_key, "primaryKey", "primaryKey: true and primaryKeyPosition"),
        (_set("region", "primaryKeyPosition", 3), "primaryKeyPosition", "without gaps"),
        (_set("region", "required", False), "[region].required", "required: true"),
        (_threshold(1.5), "quarantineThreshold", "share in [0, 1]"),
        (_threshold("5%"), "quarantineThreshold", "share in [0, 1]"),
        (_threshold(-0.1), "quarantineThreshold", "share in [0, 1]"),
        (_set("region", "classification", "secret"), "classification", "public, internal"),
        (_set("region", "tags", ["pii"]), "classification", "restricted"),
        (_sql_rule, "quality[0].metric", "library metric"),
        (_no_freshness, "slaProperties", "freshness"),
        (lambda raw: raw.update(domain="logistica"), "domain", "domain folder"),
        (lambda raw: raw.update(dataProduct="revenue"), "physicalName", "file name equal"),
    ],
    ids=lambda v: v if isinstance(v, str) else getattr(v, "__name__", "change"),
)
def test_bad_contract_files_name_file_field_and_fix(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], field: str, fix: str
) -> None:
    raw = daily_revenue_raw()
    change(raw)
    path = write_contract(tmp_path, raw)
    with pytest.raises(ContractError) as info:
        load_contract(path)
    message = str(info.value)
    assert "daily_revenue.odcs.yaml" in message
    assert field in message
    assert fix in message


def test_malformed_or_missing_contract_files_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "ventas" / "contracts" / "daily_revenue.odcs.yaml"
    with pytest.raises(ContractError, match="file not found; create it"):
        load_contract(path)
    path.parent.mkdir(parents=True)
    path.write_text("apiVersion: v3.1.0\nkind: [DataContract\n")
    with pytest.raises(ContractError, match=r"daily_revenue\.odcs\.yaml:\d+: malformed YAML"):
        load_contract(path)


def test_pii_marker_is_read_from_the_pii_tag(tmp_path: Path) -> None:
    raw = daily_revenue_raw()
    raw["schema"][0]["properties"].append(
        {
            "name": "contact_email",
            "description": "Email of the regional manager.",
            "logicalType": "string",
            "physicalType": "String",
            "required": False,
            "classification": "restricted",
            "tags": ["pii"],
        }
    )
    contract = load_contract(write_contract(tmp_path, raw))
    assert contract.column("contact_email").pii
    assert contract.pii_columns == ["contact_email"]
    assert not contract.column("region").pii


def copy_domains(root: Path) -> Path:
    """A copy of every domain.yml and contract under root/domains."""
    target = root / "domains"
    for domain in REAL_DOMAINS.glob("*/domain.yml"):
        (target / domain.parent.name).mkdir(parents=True)
        shutil.copy(domain, target / domain.parent.name / "domain.yml")
        shutil.copytree(domain.parent / "contracts", target / domain.parent.name / "contracts")
    return target


def test_a_product_without_contract_names_the_missing_file(tmp_path: Path) -> None:
    domains = copy_domains(tmp_path)
    (domains / "marketing" / "contracts" / "customer_segments.odcs.yaml").unlink()
    with pytest.raises(ContractError) as info:
        load_contracts(domains)
    assert "marketing/contracts/customer_segments.odcs.yaml: missing" in str(info.value)


def test_a_contract_without_product_and_a_foreign_owner_are_reported(tmp_path: Path) -> None:
    domains = copy_domains(tmp_path)
    raw = daily_revenue_raw()
    raw["schema"][0]["name"] = raw["schema"][0]["physicalName"] = raw["dataProduct"] = "extra"
    write_contract(domains, raw, name="extra")
    raw = daily_revenue_raw()
    raw["team"]["members"][0]["username"] = "someone@company.com"
    write_contract(domains, raw)
    with pytest.raises(ContractError) as info:
        load_contracts(domains)
    message = str(info.value)
    assert "extra.odcs.yaml: ventas.extra is not under data_products" in message
    assert "owner someone@company.com differs from sales-team@company.com" in message


def test_a_contract_sla_that_differs_from_the_domain_slo_is_reported(tmp_path: Path) -> None:
    domains = copy_domains(tmp_path)
    raw = daily_revenue_raw()
    raw["slaProperties"][0]["value"] = 30
    write_contract(domains, raw)
    with pytest.raises(ContractError, match=r"freshness 0:30:00 differs from 0:20:00"):
        load_contracts(domains)
