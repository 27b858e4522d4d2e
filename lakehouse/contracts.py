"""Data contracts: one ODCS v3 YAML file per gold data product, loaded into typed specs.

A contract is the only place a product's schema and row rules are written. The loader checks it
against the ODCS JSON schema, then reads what the platform enforces: polars dtypes
(`physicalType`), nullability (`required`), the primary key, `unique`, value bounds
(`logicalTypeOptions`), valid values (`quality` metric `invalidValues`), the PII
marker (tag `pii`), SLAs (`slaProperties`) and the batch tolerance (custom property
`quarantineThreshold`). `pandera_schema` turns it into the quality gate's pandera schema.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import yaml

from lakehouse.registry import Registry, load_registry, parse_duration, parse_fraction

if TYPE_CHECKING:
    import pandera.polars as pa

CONTRACTS_DIR = "contracts"
SUFFIX = ".odcs.yaml"
EXAMPLE = "domains/ventas/contracts/daily_revenue.odcs.yaml"
LOGICAL_TYPES = ("string", "integer", "number", "boolean", "date", "timestamp")
CLASSIFICATIONS = ("public", "internal", "restricted")
PII_TAG = "pii"
DEFAULT_QUARANTINE_THRESHOLD = 0.05
SLA_PROPERTIES = ("freshness", "latency", "availability")
METRICS = ("invalidValues", "nullValues", "duplicateValues")

_DTYPES: dict[str, pl.DataType] = {
    name: getattr(pl, name)()
    for name in (
        *(f"{sign}Int{bits}" for sign in ("", "U") for bits in (8, 16, 32, 64)),
        *("Float32", "Float64", "String", "Boolean", "Date"),
    )
}
_DATETIME_RE = re.compile(r"^Datetime\(\s*(ns|us|ms)\s*(?:,\s*([\w/+-]+)\s*)?\)$")
_SEMVER_RE = re.compile(r"^\d+\.\d+\.\d+$")
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_OPTIONS: dict[str, tuple[str, ...]] = {
    "integer": _BOUNDS,
    "number": _BOUNDS,
    "string": (),
    "timestamp": ("timezone", "format"),
    "date": ("format",),
}


_FIXES = {
    "apiVersion": "write apiVersion: v3.1.0",
    "version": "write a semantic version, e.g. version: 1.0.0",
    "domain": "write the name of the domain folder that holds the file",
    "schema": "describe exactly one object: the product's table",
    "physicalName": "make schema[0].physicalName, dataProduct and the file name equal",
    "properties": "list each column once, with name, logicalType and physicalType",
    "logicalType": f"use one of {', '.join(LOGICAL_TYPES)}",
    "physicalType": "write a polars dtype holding the logicalType, e.g. Int64, Datetime(us, UTC)",
    "logicalTypeOptions": "keep only minimum/maximum/exclusive* (numbers), timezone/format (times)",
    "timezone": "write timezone: true exactly when physicalType has a zone, e.g. Datetime(us, UTC)",
    "classification": f"set one of {', '.join(CLASSIFICATIONS)} (restricted when tagged {PII_TAG})",
    "description": "say in one sentence what the column holds",
    "metric": f"use a library metric ({', '.join(METRICS)}) or type: text",
    "mustBe": "write mustBe: 0; the batch tolerance is the quarantineThreshold custom property",
    "arguments": "add validValues: [...] listing the allowed values",
    "members": "add team: {members: [{username: <owner in domain.yml>, role: owner}]}",
    "slaProperties": "add freshness, latency (value, unit: min) and availability (unit: percent)",
    "quarantineThreshold": "write a share in [0, 1], e.g. value: 0.05 (5% of rows may fail)",
    "primaryKey": "mark the key columns with primaryKey: true and primaryKeyPosition: 1, 2, ...",
    "primaryKeyPosition": "number the key columns 1, 2, ... without gaps",
    "required": "set required: true on every primary key column",
}


class ContractError(ValueError):
    """A contract file that cannot be loaded or disagrees with the registry: file, field, fix."""


class ContractViolation(ValueError):
    """A batch whose columns or dtypes differ from its contract: a pipeline bug, not bad rows."""


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a gold product as its contract declares it."""

    name: str
    logical_type: str
    physical_type: pl.DataType
    required: bool
    primary_key: bool
    unique: bool
    pii: bool
    classification: str
    description: str
    valid_values: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_inclusive: bool = True
    max_inclusive: bool = True


@dataclass(frozen=True)
class Contract:
    """A gold data product's contract: schema, key, owner, SLAs and quarantine threshold."""

    id: str
    domain: str
    product: str
    version: str
    owner: str
    path: Path
    columns: tuple[ColumnSpec, ...]
    primary_key: list[str]
    quarantine_threshold: float
    sla: dict[str, timedelta | float]
    raw: dict[str, Any] = field(repr=False)

    @property
    def qualified_name(self) -> str:
        """The mesh-wide product name, e.g. 'ventas.daily_revenue'."""
        return f"{self.domain}.{self.product}"

    @property
    def names(self) -> list[str]:
        """Column names in contract order."""
        return [c.name for c in self.columns]

    @property
    def pii_columns(self) -> list[str]:
        """Names of the columns tagged as personal data."""
        return [c.name for c in self.columns if c.pii]

    def column(self, name: str) -> ColumnSpec:
        """The spec of one column."""
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.qualified_name} has no column {name!r}{_suggest(name, self.names)}")


def parse_dtype(text: str) -> pl.DataType:
    """The polars dtype named by a contract physicalType, e.g. 'Int64' or 'Datetime(us, UTC)'."""
    match = _DATETIME_RE.match(text.strip())
    if match:
        return pl.Datetime(match.group(1), match.group(2))  # type: ignore[arg-type]
    if text in _DTYPES:
        return _DTYPES[text]
    raise ValueError(f"unknown {text!r}; use one of {', '.join(_DTYPES)}, Datetime(us, UTC)")


def dtype_name(dtype: pl.DataType) -> str:
    """A polars dtype spelled as contracts write it, e.g. 'Datetime(us, UTC)'."""
    if isinstance(dtype, pl.Datetime):
        return f"Datetime({dtype.time_unit}{f', {dtype.time_zone}' if dtype.time_zone else ''})"
    return str(dtype)


def _fits(logical: object, dtype: pl.DataType) -> bool:
    return {
        "integer": dtype.is_integer(),
        "number": dtype.is_float(),
        "string": dtype == pl.String,
        "boolean": dtype == pl.Boolean,
        "date": dtype == pl.Date,
        "timestamp": isinstance(dtype, pl.Datetime),
    }.get(str(logical), False)


def _show(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _need(where: str, checks: list[tuple[object, str, str]]) -> None:
    """Raise 'field: what is wrong; fix' for the first (ok, field, what) that is not ok."""
    for ok, key, what in checks:
        if not ok:
            raise ValueError(f"{where}{key}: {what}; {_FIXES[key.split('.')[-1]]}")


@functools.cache
def _odcs_validator() -> Any:
    import jsonschema

    text = resources.files("open_data_contract_standard").joinpath("schema.json").read_text()
    schema = json.loads(text)
    return jsonschema.validators.validator_for(schema)(schema)


def odcs_problems(raw: dict[str, Any]) -> list[str]:
    """Where a parsed contract breaks the ODCS v3 JSON schema, as 'field: what; fix' lines."""
    import jsonschema

    problems = []
    for error in sorted(_odcs_validator().iter_errors(raw), key=jsonschema.exceptions.relevance):
        best = jsonschema.exceptions.best_match([error])
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in best.absolute_path)
        fix = f"see the ODCS v3 reference and compare with {EXAMPLE}"
        if where.endswith(".logicalType"):
            fix = _FIXES["logicalType"]
        elif "unexpected" in best.message:
            fix = "remove or rename it (ODCS keys are camelCase, e.g. primaryKey)"
        problems.append(f"{where.lstrip('.') or 'top level'}: {best.message}; {fix}")
    return list(dict.fromkeys(problems))


def _quality(prop: dict[str, Any], where: str) -> dict[str, Any]:
    """What a property's quality rules add to its column: valid values, not null, unique."""
    found: dict[str, Any] = {}
    for index, rule in enumerate(prop.get("quality") or []):
        metric, args, kind = rule.get("metric"), rule.get("arguments") or {}, rule.get("type")
        zero = rule.get("mustBe") == 0 and rule.get("unit", "rows") == "rows"
        checked = metric != "invalidValues" or args.get("validValues")
        if kind == "text":
            continue
        _need(
            f"{where}.quality[{index}].",
            [
                (
                    kind in (None, "library") and metric in METRICS,
                    "metric",
                    f"{kind or 'library'} {metric} cannot run",
                ),
                (zero, "mustBe", "row rules allow no failing row in the published batch"),
                (checked, "arguments", "invalidValues needs validValues"),
            ],
        )
        found |= {"valid_values": tuple(args["validValues"])} if "validValues" in args else {}
        found |= {"required": True} if metric == "nullValues" else {}
        found |= {"unique": True} if metric == "duplicateValues" else {}
    return found


def _column(prop: dict[str, Any], where: str) -> ColumnSpec:
    logical, kind, label = prop["logicalType"], prop.get("physicalType"), prop.get("classification")
    try:
        dtype = parse_dtype(str(kind))
    except ValueError as exc:
        raise ValueError(f"{where}.physicalType: {exc}") from None
    options = prop.get("logicalTypeOptions") or {}
    extra = sorted(set(options) - set(_OPTIONS.get(logical, ())))
    zone, has_zone = options.get("timezone"), bool(getattr(dtype, "time_zone", None))
    pii = PII_TAG in (prop.get("tags") or [])
    _need(
        f"{where}.",
        [
            (logical in LOGICAL_TYPES, "logicalType", f"{logical!r} is not supported"),
            (_fits(logical, dtype), "physicalType", f"{kind} cannot hold {logical}"),
            (not extra, "logicalTypeOptions", f"{extra} are not enforced"),
            (zone in (None, has_zone), "logicalTypeOptions.timezone", f"{zone} but {kind}"),
            (label in CLASSIFICATIONS, "classification", f"{label!r} is not a level"),
            (not pii or label == "restricted", "classification", f"{PII_TAG} but {label}"),
            (prop.get("description"), "description", "missing"),
        ],
    )
    fields = {
        "required": bool(prop.get("required")),
        "unique": bool(prop.get("unique")),
        "minimum": options.get("minimum", options.get("exclusiveMinimum")),
        "maximum": options.get("maximum", options.get("exclusiveMaximum")),
        "min_inclusive": "exclusiveMinimum" not in options,
        "max_inclusive": "exclusiveMaximum" not in options,
        **_quality(prop, where),
    }
    description, primary_key = prop["description"], bool(prop.get("primaryKey"))
    return ColumnSpec(
        prop["name"],
        logical,
        dtype,
        pii=pii,
        classification=label,
        **fields,
        primary_key=primary_key,
        description=description,
    )


def _owner(raw: dict[str, Any]) -> str:
    team = raw.get("team")
    members = team if isinstance(team, list) else (team or {}).get("members") or []
    owners = [m["username"] for m in members if str(m.get("role", "")).lower() == "owner"]
    _need("team.", [(len(owners) == 1, "members", f"{len(owners)} members have role: owner")])
    return owners[0]


def _sla(raw: dict[str, Any]) -> dict[str, timedelta | float]:
    found = {str(p["property"]).lower(): p for p in raw.get("slaProperties") or []}
    missing = [name for name in SLA_PROPERTIES if name not in found]
    _need("", [(not missing, "slaProperties", f"{', '.join(missing)} missing")])
    sla: dict[str, timedelta | float] = {}
    for name in SLA_PROPERTIES:
        value, unit = found[name]["value"], found[name].get("unit", "")
        try:
            if name == "availability":
                sla[name] = parse_fraction(f"{value}%" if unit == "percent" else value)
            else:
                sla[name] = parse_duration(f"{value} {unit}".strip())
        except ValueError as exc:
            raise ValueError(f"slaProperties.{name}: {exc}") from None
    return sla


def _threshold(raw: dict[str, Any]) -> float:
    found = {p["property"]: p["value"] for p in raw.get("customProperties") or []}
    value = found.get("quarantineThreshold", DEFAULT_QUARANTINE_THRESHOLD)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
    _need("customProperties.", [(ok, "quarantineThreshold", f"{value!r} is not in [0, 1]")])
    return float(value)


def _primary_key(columns: list[ColumnSpec], props: list[dict[str, Any]]) -> list[str]:
    keyed = sorted(
        (p.get("primaryKeyPosition", 1), c.name, c.required)
        for p, c in zip(props, columns, strict=True)
        if c.primary_key
    )
    positions = [position for position, _, _ in keyed]
    _need(
        "schema[0].properties",
        [
            (keyed, "[].primaryKey", "no column is in the primary key"),
            (positions == list(range(1, len(keyed) + 1)), "[].primaryKeyPosition", f"{positions}"),
            *((ok, f"[{name}].required", "a key column may be null") for _, name, ok in keyed),
        ],
    )
    return [name for _, name, _ in keyed]


def _build(raw: dict[str, Any], path: Path) -> Contract:
    stem, domain, objects = path.name.removesuffix(SUFFIX), raw.get("domain"), raw.get("schema")
    folder = path.parent.parent.name if path.parent.name == CONTRACTS_DIR else domain
    _need(
        "",
        [
            (str(raw["apiVersion"]).startswith("v3."), "apiVersion", "not ODCS v3"),
            (_SEMVER_RE.match(str(raw["version"])), "version", f"{raw['version']!r}"),
            (domain and domain == folder, "domain", f"{domain!r} is not {folder!r}"),
            (len(objects or []) == 1, "schema", f"{len(objects or [])} objects"),
        ],
    )
    table = objects[0]  # type: ignore[index]
    product, props = table.get("physicalName", table["name"]), table.get("properties") or []
    names = [p["name"] for p in props]
    _need(
        "schema[0].",
        [
            (product == stem == raw.get("dataProduct", stem), "physicalName", f"{product!r}"),
            (props and len(set(names)) == len(names), "properties", "none or a name repeats"),
        ],
    )
    columns = [_column(p, f"schema[0].properties[{i}]") for i, p in enumerate(props)]
    owner, key = _owner(raw), _primary_key(columns, props)
    return Contract(
        raw["id"],
        domain,
        product,
        raw["version"],
        owner,
        path,
        tuple(columns),
        key,
        _threshold(raw),
        _sla(raw),
        raw,
    )


def load_contract(path: Path) -> Contract:
    """The contract in one `<product>.odcs.yaml` file, validated as ODCS v3 and for the gate."""
    path, shown = Path(path), _show(Path(path))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContractError(f"{shown}: file not found; create it (copy {EXAMPLE})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ContractError(f"{shown}{line}: malformed YAML; fix indentation or quoting") from None
    if not isinstance(raw, dict):
        raise ContractError(f"{shown}: expected a mapping; start with 'apiVersion: v3.1.0'")
    problems = odcs_problems(raw)
    if problems:
        raise ContractError(f"{shown}: not valid ODCS v3: " + " | ".join(problems[:5]))
    try:
        return _build(raw, path)
    except ValueError as exc:
        raise ContractError(f"{shown}: {exc}") from None


def _files(domains_dir: Path) -> list[Path]:
    return sorted(domains_dir.glob(f"*/{CONTRACTS_DIR}/*{SUFFIX}"))


@functools.lru_cache(maxsize=8)
def _load_all(domains_dir: Path, stamp: tuple[tuple[str, int], ...]) -> dict[str, Contract]:
    contracts = {c.qualified_name: c for c in map(load_contract, _files(domains_dir))}
    check_contracts_match_registry(load_registry(domains_dir), contracts)
    return contracts


def load_contracts(domains_dir: Path | None = None) -> dict[str, Contract]:
    """Every `<domain>/contracts/*.odcs.yaml` keyed 'domain.product', checked against domain.yml."""
    if domains_dir is None:
        from lakehouse.config import get_settings

        domains_dir = get_settings().domains_dir
    folder = Path(domains_dir).resolve()
    files = [*_files(folder), *sorted(folder.glob("*/domain.yml"))]
    return dict(_load_all(folder, tuple((str(p), p.stat().st_mtime_ns) for p in files)))


def contract_for(qualified: str, domains_dir: Path | None = None) -> Contract:
    """The contract of one product named 'domain.product'."""
    contracts = load_contracts(domains_dir)
    if qualified not in contracts:
        hint = _suggest(qualified, list(contracts)) or f"; known: {', '.join(contracts)}"
        raise ContractError(f"no contract for {qualified!r}{hint}")
    return contracts[qualified]


def check_contracts_match_registry(registry: Registry, contracts: dict[str, Contract]) -> None:
    """Raise unless each registry product has one contract with its domain's owner and SLOs."""
    problems = []
    for domain in registry:
        for product in domain.data_products:
            contract, yml = contracts.get(product.qualified_name), _show(domain.file)
            if contract is None:
                path = _show(domain.path / CONTRACTS_DIR / f"{product.name}{SUFFIX}")
                problems.append(f"{path}: missing; {yml} lists {product.name} (copy {EXAMPLE})")
                continue
            slos = {
                "freshness": domain.slos.freshness,
                "latency": domain.slos.latency_p99,
                "availability": domain.slos.availability,
                "owner": domain.owner,
            }
            ours = {**contract.sla, "owner": contract.owner}
            problems += [
                f"{_show(contract.path)}: {name} {ours[name]} differs from {slos[name]} in {yml}; "
                "make them equal"
                for name in slos
                if ours[name] != slos[name]
            ]
    known = {p.qualified_name for p in registry.products()}
    problems += [
        f"{_show(c.path)}: {name} is not under data_products in its domain.yml; add it or "
        "delete the file"
        for name, c in sorted(contracts.items())
        if name not in known
    ]
    if problems:
        raise ContractError(" | ".join(problems))


def _not_nan(data: Any) -> pl.LazyFrame:
    return data.lazyframe.select(pl.col(data.key).is_not_nan())


def _checks(c: ColumnSpec) -> list[pa.Check]:
    """A column's pandera checks, each named by its rule id 'kind:column'."""
    import pandera.polars as pa

    checks = []
    if not c.required and c.physical_type.is_float():
        checks.append(pa.Check(_not_nan, name=f"not_nan:{c.name}", error=f"not_nan:{c.name}"))
    if c.valid_values is not None:
        rule = f"valid_values:{c.name}"
        checks.append(pa.Check.isin(list(c.valid_values), name=rule, error=rule))
    rule, low, high = f"in_range:{c.name}", c.minimum, c.maximum
    if low is not None and high is not None:
        check = pa.Check.in_range(low, high, c.min_inclusive, c.max_inclusive, name=rule)
    elif low is not None:
        check = (pa.Check.ge if c.min_inclusive else pa.Check.gt)(low, name=rule)
    elif high is not None:
        check = (pa.Check.le if c.max_inclusive else pa.Check.lt)(high, name=rule)
    if low is not None or high is not None:
        check.error = rule
        checks.append(check)
    return checks


def pandera_schema(contract: Contract) -> pa.DataFrameSchema:
    """The pandera schema of a contract: dtypes, nullability, value checks, unique primary key."""
    import pandera.polars as pa

    columns = {
        c.name: pa.Column(
            c.physical_type,
            checks=_checks(c),
            nullable=not c.required,
            unique=c.unique and contract.primary_key != [c.name],
            description=c.description,
        )
        for c in contract.columns
    }
    return pa.DataFrameSchema(
        columns,
        unique=contract.primary_key,
        report_duplicates="all",
        strict=True,
        name=contract.qualified_name,
        description=f"{contract.path.name} v{contract.version}",
    )


def cast_to_contract(df: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    """The frame's contract columns, in contract order, cast to the contract's physical types."""
    missing = [name for name in contract.names if name not in df.columns]
    if missing:
        raise ContractViolation(
            f"{contract.qualified_name}: columns {missing} are missing; add them to the pipeline "
            f"output ({_show(contract.path)} lists them)"
        )
    return df.select(pl.col(c.name).cast(c.physical_type) for c in contract.columns)
