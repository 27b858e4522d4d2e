from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from lakehouse.contracts import Contract, contract_for, load_contract
from lakehouse.quality import ContractViolation, Rule, ValidationResult, split, validate

DAILY_REVENUE = (
    Path(__file__).resolve().parents[1]
    / "domains"
    / "ventas"
    / "contracts"
    / "daily_revenue.odcs.yaml"
)
LABELS = ["_rule", "_reason", "_column"]


@pytest.fixture(scope="module")
def contract() -> Contract:
    """ventas.daily_revenue: composite key (date, region), valid values, bounds, 1% threshold."""
    return contract_for("ventas.daily_revenue")


def batch(rows: int = 6, **columns: list[Any]) -> pl.DataFrame:
    """`rows` valid daily_revenue rows (one per day in LATAM), with `columns` replaced."""
    data: dict[str, list[Any]] = {
        "date": [date(2024, 1, day) for day in range(1, rows + 1)],
        "region": ["LATAM"] * rows,
        "revenue_gross": [100.0 * day for day in range(rows)],
        "revenue_net": [90.0 * day - 50 for day in range(rows)],
        "transactions_count": list(range(rows)),
        "refunds_count": [1] * rows,
        "currency": ["USD"] * rows,
        "calculated_at": [datetime(2024, 2, 1, tzinfo=UTC)] * rows,
    }
    data.update(columns)
    return pl.DataFrame(data).with_columns(pl.col("calculated_at").cast(pl.Datetime("us", "UTC")))


def test_a_good_batch_passes_whole(contract: Contract) -> None:
    good = batch()
    result = validate(good, contract)
    assert result.valid.equals(good)
    assert result.quarantined.is_empty()
    assert result.quarantined.columns == [*good.columns, *LABELS]
    assert (result.failure_share, result.threshold, result.passed) == (0.0, 0.01, True)
    assert result.rules_failed() == {}


def test_validate_quarantines_exactly_the_bad_rows_with_rule_and_reason(contract: Contract) -> None:
    bad = batch(
        region=["LATAM", "MARS", "LATAM", "LATAM", "LATAM", "LATAM"],
        revenue_gross=[0.0, 100.0, -5.0, None, 400.0, 500.0],
        currency=["USD", "USD", "USD", "USD", "USD", "EUR"],
    )
    result = validate(bad, contract)
    assert result.valid.equals(bad[[0, 4]])
    assert result.quarantined.drop(LABELS).equals(bad[[1, 2, 3, 5]])
    assert result.quarantined.select(LABELS).rows() == [
        ("valid_values:region", "region is 'MARS', not one of LATAM, NA, EU, APAC", "region"),
        ("in_range:revenue_gross", "revenue_gross is -5.0 but must be >= 0", "revenue_gross"),
        (
            "not_null:revenue_gross",
            "revenue_gross is null but the contract requires a value",
            "revenue_gross",
        ),
        ("valid_values:currency", "currency is 'EUR', not one of USD", "currency"),
    ]
    assert result.failure_share == pytest.approx(4 / 6)
    assert not result.passed


def test_a_row_failing_several_rules_appears_once_with_all_of_them(contract: Contract) -> None:
    bad = batch(2, region=["LATAM", "MARS"], refunds_count=[0, -3], currency=["USD", "BRL"])
    quarantined = validate(bad, contract).quarantined
    assert quarantined.height == 1
    rule, reason, column = quarantined.select(LABELS).row(0)
    assert rule == "valid_values:region; in_range:refunds_count; valid_values:currency"
    assert reason.split("; ") == [
        "region is 'MARS', not one of LATAM, NA, EU, APAC",
        "refunds_count is -3 but must be >= 0",
        "currency is 'BRL', not one of USD",
    ]
    assert column == "region; refunds_count; currency"


def test_duplicate_primary_keys_quarantine_every_copy(contract: Contract) -> None:
    same_day = [date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 1), date(2024, 1, 4)]
    result = validate(batch(4, date=same_day), contract)
    assert result.valid["date"].to_list() == [date(2024, 1, 2), date(2024, 1, 4)]
    assert result.quarantined["_rule"].to_list() == ["unique_key:date,region"] * 2
    assert (
        result.quarantined["_reason"][0]
        == "primary key (date, region) appears in more than one row"
    )
    assert result.quarantined["_column"][0] == "date,region"


def test_rules_failed_counts_rows_per_rule(contract: Contract) -> None:
    bad = batch(
        currency=["EUR", "EUR", "USD", "USD", "USD", "USD"], refunds_count=[-1, 0, 0, 0, 0, 0]
    )
    assert validate(bad, contract).rules_failed() == {
        "valid_values:currency": 2,
        "in_range:refunds_count": 1,
    }


@pytest.mark.parametrize(("threshold", "passed"), [(0.2, True), (1 / 6, True), (0.1, False)])
def test_the_threshold_decides_whether_the_batch_passes(
    contract: Contract, threshold: float, passed: bool
) -> None:
    tolerant = dataclasses.replace(contract, quarantine_threshold=threshold)
    result = validate(batch(currency=["USD"] * 5 + ["EUR"]), tolerant)
    assert isinstance(result, ValidationResult)
    assert result.failure_share == pytest.approx(1 / 6)
    assert result.threshold == threshold
    assert result.passed is passed
    assert result.valid.height + result.quarantined.height == 6


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda df: df.drop("refunds_count"), "column 'refunds_count' (Int64) is missing"),
        (
            lambda df: df.with_columns(pl.col("refunds_count").cast(pl.Int32)),
            "column 'refunds_count' is Int32 but the contract says Int64; cast it",
        ),
        (
            lambda df: df.with_columns(pl.col("calculated_at").dt.replace_time_zone(None)),
            "column 'calculated_at' is Datetime(us) but the contract says Datetime(us, UTC)",
        ),
        (
            lambda df: df.with_columns(pl.col("revenue_gross").cast(pl.String)),
            "column 'revenue_gross' is String but the contract says Float64",
        ),
        (lambda df: df.with_columns(total=pl.lit(1)), "column 'total' is not in the contract"),
    ],
    ids=["missing", "int32", "naive_timestamp", "string_amount", "extra"],
)
def test_schema_level_mismatch_raises_contract_violation(
    contract: Contract, change: Any, expected: str
) -> None:
    with pytest.raises(ContractViolation) as info:
        validate(change(batch()), contract)
    message = str(info.value)
    assert message.startswith("ventas.daily_revenue: the batch does not match")
    assert "daily_revenue.odcs.yaml v2.1.0" in message
    assert expected in message
    assert "pipeline bug" in message


def test_nan_and_non_key_uniqueness_rules_come_from_the_contract(tmp_path: Path) -> None:
    raw = copy.deepcopy(yaml.safe_load(DAILY_REVENUE.read_text()))
    raw["schema"][0]["properties"] += [
        {
            "name": "score",
            "description": "A nullable number.",
            "logicalType": "number",
            "physicalType": "Float64",
            "required": False,
            "classification": "internal",
        },
        {
            "name": "batch_ref",
            "description": "A unique reference.",
            "logicalType": "string",
            "physicalType": "String",
            "required": True,
            "unique": True,
            "classification": "internal",
        },
    ]
    path = tmp_path / "ventas" / "contracts" / "daily_revenue.odcs.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(raw))
    contract = load_contract(path)
    df = batch(3).with_columns(
        score=pl.Series([None, float("nan"), 0.5]), batch_ref=pl.Series(["a", "b", "a"])
    )
    result = validate(df, contract)
    unique = ("unique:batch_ref", "batch_ref a appears in more than one row; it must be unique")
    assert result.quarantined.select("_rule", "_reason").rows() == [
        unique,
        ("not_nan:score", "score is NaN; write null for a missing number"),
        unique,
    ]


def test_split_tags_bad_rows_with_their_first_failing_rule() -> None:
    df = pl.DataFrame(
        {"amount": [10.0, -1.0, None, 5.0, -2.0], "currency": ["USD", "EUR", "USD", "XXX", "XXX"]}
    )
    rules = [
        Rule("amount_not_negative", pl.col("amount") >= 0, "amount is negative or missing"),
        Rule("known_currency", pl.col("currency").is_in(["USD", "EUR"]), "currency is unknown"),
    ]
    good, bad = split(df, rules)
    assert good.equals(df[[0]])
    assert bad.drop("_rule", "_reason").equals(df[[1, 2, 3, 4]])
    assert bad.select("_rule", "_reason").rows() == [
        ("amount_not_negative", "amount is negative or missing"),
        ("amount_not_negative", "amount is negative or missing"),
        ("known_currency", "currency is unknown"),
        ("amount_not_negative", "amount is negative or missing"),
    ]


def test_split_works_lazily_and_without_rules() -> None:
    df = pl.DataFrame({"x": [1, 2, 3]})
    good, bad = split(df.lazy(), [Rule("small", pl.col("x") < 3, "x is 3 or more")])
    assert isinstance(good, pl.LazyFrame)
    assert good.collect()["x"].to_list() == [1, 2]
    assert bad.collect().rows() == [(3, "small", "x is 3 or more")]
    good, bad = split(df, [])
    assert good.equals(df)
    assert bad.columns == ["x", "_rule", "_reason"] and bad.is_empty()
