"""The quality gate: every batch of a gold product is checked against its contract.

`validate` runs the pandera schema generated from the contract over the whole batch (lazily, so
every failure is collected) and splits it into rows to publish and rows to quarantine, each
quarantined row carrying the rules it broke (`_rule`), why (`_reason`) and where (`_column`).
Missing columns or wrong dtypes are not bad rows but a pipeline bug: they raise
`ContractViolation`. `split` applies a pipeline's own curation rules the same way. Both stay
vectorised: the only Python loops run over rules or columns, never over rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import polars as pl

from lakehouse.contracts import Contract, ContractViolation, dtype_name, pandera_schema

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

SEPARATOR = "; "
_KINDS = ("not_null", "not_nan", "valid_values", "in_range", "unique", "unique_key")
_TAG = "__first_failed_rule"
_VALIDATE_LABELS = ("_rule", "_reason", "_column")
_SPLIT_LABELS = ("_rule", "_reason")


@dataclass(frozen=True)
class Rule:
    """A pipeline curation rule: `valid` is True for good rows; null counts as a failure."""

    name: str
    valid: pl.Expr
    reason: str


@dataclass
class ValidationResult:
    """One batch checked against its contract: the rows to publish and the rows to quarantine."""

    valid: pl.DataFrame
    quarantined: pl.DataFrame
    failure_share: float
    threshold: float

    @property
    def passed(self) -> bool:
        """True when the share of failing rows is within the contract's quarantine threshold."""
        return self.failure_share <= self.threshold

    def rules_failed(self) -> dict[str, int]:
        """Failing rows per rule, most frequent first (a row breaking two rules counts twice)."""
        if self.quarantined.is_empty():
            return {}
        counts = (
            self.quarantined.select(pl.col("_rule").str.split(SEPARATOR).explode())
            .group_by("_rule")
            .len()
            .sort(["len", "_rule"], descending=[True, False])
        )
        return dict(counts.iter_rows())


def _no_rows(df: Frame, labels: Sequence[str]) -> Frame:
    """An empty frame with df's columns plus the string label columns."""
    return df.clear().with_columns(pl.lit(None, pl.String).alias(name) for name in labels)


def _explain(rule: str, contract: Contract) -> tuple[str, int, str, str, str | None]:
    """(rule, sort order, column, text before the failing value, text after it or None)."""
    kind, _, column = rule.partition(":")
    names, known = contract.names, kind in _KINDS and kind != "unique_key"
    order = (names.index(column) if column in names else len(names)) * 10 + _KINDS.index(kind)
    if kind == "unique_key":
        shown = ", ".join(contract.primary_key)
        return rule, order, column, f"primary key ({shown}) appears in more than one row", None
    if column not in names or not known:
        return rule, order, column, f"failed check {rule}", None
    c = contract.column(column)
    low = f"{'>=' if c.min_inclusive else '>'} {c.minimum:g}" if c.minimum is not None else ""
    high = f"{'<=' if c.max_inclusive else '<'} {c.maximum:g}" if c.maximum is not None else ""
    allowed = ", ".join(map(str, c.valid_values or ()))
    before, after = {
        "not_null": (f"{column} is ", " but the contract requires a value"),
        "not_nan": (f"{column} is NaN; write null for a missing number", None),
        "valid_values": (f"{column} is '", f"', not one of {allowed}"),
        "in_range": (f"{column} is ", f" but must be {' and '.join(filter(None, (low, high)))}"),
        "unique": (f"{column} ", " appears in more than one row; it must be unique"),
    }[kind]
    return rule, order, column, before, after


def _row_failures(cases: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    """One row per failing batch row: its index (`_row`) and its `_rule`, `_reason`, `_column`."""
    check, column = pl.col("check"), pl.col("column")
    rule = (
        pl.when(check == "not_nullable")
        .then(pl.lit("not_null:") + column)
        .when(check == "multiple_fields_uniqueness")
        .then(pl.lit("unique_key:" + ",".join(contract.primary_key)))
        .when(check == "field_uniqueness")
        .then(pl.lit("unique:") + column)
        .otherwise(check)
    )
    failures = cases.select(
        pl.col("index").cast(pl.UInt32).alias("_row"),
        rule.alias("_rule"),
        pl.col("failure_case").fill_null("null").alias("_value"),
    ).unique(["_row", "_rule"])
    explained = pl.DataFrame(
        [_explain(r, contract) for r in failures["_rule"].unique().to_list()],
        schema=["_rule", "_order", "_column", "_before", "_after"],
        orient="row",
    )
    reason = pl.when(pl.col("_after").is_null()).then("_before")
    reason = reason.otherwise(pl.concat_str("_before", "_value", "_after"))
    return (
        failures.join(explained, on="_rule", how="left")
        .with_columns(reason.alias("_reason"))
        .sort("_row", "_order")
        .group_by("_row", maintain_order=True)
        .agg(
            pl.col("_rule").str.join(SEPARATOR),
            pl.col("_reason").str.join(SEPARATOR),
            pl.col("_column").unique(maintain_order=True).str.join(SEPARATOR),
        )
    )


def _schema_problems(cases: pl.DataFrame, df: pl.DataFrame, contract: Contract) -> list[str]:
    """Batch-level failures (missing or extra columns, wrong dtypes) as 'what; fix' sentences."""
    structural, other = [], []
    for check, column, value in cases.select("check", "column", "failure_case").iter_rows():
        if check == "column_in_dataframe":
            expected = dtype_name(contract.column(value).physical_type)
            structural.append(f"column {value!r} ({expected}) is missing; add it to the output")
        elif check == "column_in_schema":
            structural.append(
                f"column {value!r} is not in the contract; drop it or add it to {contract.path}"
            )
        elif check.startswith("dtype("):
            expected = dtype_name(contract.column(column).physical_type)
            structural.append(
                f"column {column!r} is {dtype_name(df.schema[column])} but the contract says "
                f"{expected}; cast it in the pipeline, e.g. pl.col({column!r}).cast(...)"
            )
        else:
            other.append(f"check {check} on {column!r} could not run: {value}")
    return structural or other


def validate(df: pl.DataFrame, contract: Contract) -> ValidationResult:
    """Check a batch against its contract and split it into valid and quarantined rows."""
    from pandera.config import ValidationDepth, config_context
    from pandera.errors import SchemaErrors

    schema = pandera_schema(contract)
    threshold = contract.quarantine_threshold
    try:
        with config_context(
            validation_enabled=True, validation_depth=ValidationDepth.SCHEMA_AND_DATA
        ):
            schema.validate(df, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return ValidationResult(df, _no_rows(df, _VALIDATE_LABELS), 0.0, threshold)
    problems = _schema_problems(cases.filter(pl.col("index").is_null()), df, contract)
    if problems:
        raise ContractViolation(
            f"{contract.qualified_name}: the batch does not match {contract.path.name} "
            f"v{contract.version}: " + " | ".join(problems) + "; this is a pipeline bug, so the "
            "batch must not be published"
        )
    failures = _row_failures(cases.filter(pl.col("index").is_not_null()), contract)
    rows = failures["_row"]
    failing = pl.repeat(False, df.height, dtype=pl.Boolean, eager=True).scatter(rows, True)
    quarantined = pl.concat([df[rows], failures.select(_VALIDATE_LABELS)], how="horizontal")
    return ValidationResult(df.filter(~failing), quarantined, len(rows) / df.height, threshold)


def split(df: Frame, rules: Sequence[Rule]) -> tuple[Frame, Frame]:
    """(good rows, bad rows with `_rule` and `_reason` of the first rule each bad row fails)."""
    if not rules:
        return df, _no_rows(df, _SPLIT_LABELS)
    first = pl.coalesce(
        pl.when(rule.valid.fill_null(False).not_()).then(pl.lit(index, pl.UInt32))
        for index, rule in enumerate(rules)
    )
    tagged = df.with_columns(first.alias(_TAG))
    codes, tag = list(range(len(rules))), pl.col(_TAG)
    bad = tagged.filter(tag.is_not_null()).with_columns(
        _rule=tag.replace_strict(codes, [r.name for r in rules], return_dtype=pl.String),
        _reason=tag.replace_strict(codes, [r.reason for r in rules], return_dtype=pl.String),
    )
    return tagged.filter(tag.is_null()).drop(_TAG), bad.drop(_TAG)
