"""The domain registry: every `domains/<name>/domain.yml` loaded into typed, validated models.

Domains are discovered by folder, so adding a domain means adding a folder. Every problem in a
domain file becomes one `RegistryError` line that names the file, the field and the fix.
"""

from __future__ import annotations

import difflib
import heapq
import math
import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

DOMAIN_FILE = "domain.yml"

_IDENT = r"[a-z][a-z0-9_]*"
_QUALIFIED_RE = re.compile(rf"^{_IDENT}\.{_IDENT}$")
_EMAIL_RE = re.compile(r"^[\w.%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-z]+)$")
_PERCENT_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*%(\s+[a-z_-]+)?$")
_UNIT_SECONDS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
}
_HINTS = {
    "name": "set name: to the folder name, e.g. name: ventas",
    "owner": "add owner: <team>@company.com",
    "mission": "add a one-sentence mission: line",
    "data_products": "list products as '- name: daily_revenue' plus 'description: ...'",
    "slos": 'write e.g. latency_p99: "15 minutes", availability: "99.9%", '
    'completeness: "99.5%", freshness: "20 minutes"',
    "dependencies": "list dependencies as domain.product, e.g. '- producto.catalog'",
    "budget_monthly": "set budget_monthly: 2000 (USD per month)",
    "compliance": "list regimes, e.g. compliance: [GDPR], or compliance: []",
}


class RegistryError(ValueError):
    """A domain definition that cannot be loaded or looked up; names file, field and fix."""


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """A positive duration from '15 minutes', '2 hours', '30s', '1 day' or bare seconds."""
    example = 'write it like "15 minutes" (units: s, min, hour, day)'
    match = _DURATION_RE.match(value.strip().lower()) if isinstance(value, str) else None
    seconds = math.nan
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif _is_number(value):
        seconds = float(value)
    elif match and match.group(2) in _UNIT_SECONDS:
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not math.isfinite(seconds) or abs(seconds) > timedelta.max.total_seconds():
        raise ValueError(f"cannot read {value!r} as a duration; {example}")
    result = timedelta(seconds=seconds)
    if result <= timedelta(0):
        raise ValueError(f"duration {value!r} must be positive; {example}")
    return result


def parse_fraction(value: str | int | float) -> float:
    """A fraction in 0..1 from '99.9%', '99.5% completeness' or 0.999."""
    match = _PERCENT_RE.match(value.strip().lower()) if isinstance(value, str) else None
    if not isinstance(value, str) and _is_number(value) and 0 <= value <= 1:
        return float(value)
    if match and Decimal(match.group(1)) <= 100:
        return float(Decimal(match.group(1)) / 100)
    raise ValueError(f"cannot read {value!r} as a percentage; write it like '99.9%' or 0.999")


def parse_budget(value: str | int | float) -> float:
    """A non-negative monthly budget in USD from 2000 or '$2,000'."""
    text = str(value).strip().upper().removesuffix("USD").replace("$", "").replace(",", "")
    try:
        amount = float(text)
    except ValueError:
        amount = math.nan
    if not math.isfinite(amount) or isinstance(value, bool):
        raise ValueError(f"cannot read {value!r} as USD; write e.g. budget_monthly: 2000")
    if amount < 0:
        raise ValueError(f"{value!r} is negative; set 0 or more USD, e.g. budget_monthly: 2000")
    return amount


class SLOs(BaseModel):
    """Service level objectives a domain promises for its data products."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_p99: timedelta = Field(description="99th percentile time from event to product")
    availability: float = Field(description="Fraction of time the products are served, 0..1")
    completeness: float = Field(description="Fraction of expected records present, 0..1")
    freshness: timedelta = Field(description="Maximum age of the newest data")

    _durations = field_validator("latency_p99", "freshness", mode="before")(parse_duration)
    _fractions = field_validator("availability", "completeness", mode="before")(parse_fraction)


class DataProduct(BaseModel):
    """One published data product of a domain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    domain: str = Field(description="Owning domain, filled in by the loader")
    name: str = Field(pattern=rf"^{_IDENT}$", description="snake_case product name")
    description: str = Field(min_length=1, description="One sentence saying what the data is")

    @property
    def qualified_name(self) -> str:
        """The mesh-wide name, e.g. 'ventas.daily_revenue'."""
        return f"{self.domain}.{self.name}"


class Domain(BaseModel):
    """One business domain: its owner, mission, products, SLOs and upstream dependencies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=rf"^{_IDENT}$", description="Domain name, equal to its folder")
    owner: str = Field(description="Email of the owning team")
    mission: str = Field(min_length=1)
    data_products: list[DataProduct] = Field(min_length=1)
    slos: SLOs
    dependencies: list[str] = Field(default_factory=list, description="'domain.product' names")
    budget_monthly: float = Field(description="Monthly budget in USD")
    compliance: list[str] = Field(default_factory=list, description="e.g. GDPR, PCI-DSS, SOX")
    path: Path = Field(description="Folder holding domain.yml")

    _budget = field_validator("budget_monthly", mode="before")(parse_budget)

    @field_validator("owner")
    @classmethod
    def _owner_is_email(cls, value: str) -> str:
        if not _EMAIL_RE.match(value):
            raise ValueError(f"{value!r} is not an email; write e.g. owner: sales-team@company.com")
        return value

    @field_validator("data_products")
    @classmethod
    def _unique_products(cls, products: list[DataProduct]) -> list[DataProduct]:
        names = [p.name for p in products]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"{name!r} is listed twice; keep one entry per product name")
        return products

    @field_validator("dependencies")
    @classmethod
    def _qualified_deps(cls, deps: list[str], info: ValidationInfo) -> list[str]:
        for dep in deps:
            if not _QUALIFIED_RE.match(dep):
                raise ValueError(f"{dep!r} is not domain.product; write e.g. '- producto.catalog'")
            if dep.split(".")[0] == info.data.get("name"):
                raise ValueError(
                    f"{dep!r} is a dependency on itself; remove it and list only other domains"
                )
        return deps

    @property
    def file(self) -> Path:
        """The domain.yml this domain was loaded from."""
        return self.path / DOMAIN_FILE

    def product(self, name: str) -> DataProduct:
        """The data product called `name` in this domain."""
        for product in self.data_products:
            if product.name == name:
                return product
        names = [p.name for p in self.data_products]
        hint = _suggest(name, names) or f"; it publishes: {', '.join(names)}"
        raise RegistryError(f"domain {self.name!r} has no data product {name!r}{hint}")

    def dependency_domains(self) -> set[str]:
        """Names of the domains this domain reads from."""
        return {dep.split(".")[0] for dep in self.dependencies}


class Registry:
    """All domains of the mesh, checked for unknown dependencies and cycles."""

    def __init__(self, domains: Mapping[str, Domain]) -> None:
        self.domains: dict[str, Domain] = {d.name: d for _, d in sorted(domains.items())}
        self._check_dependencies()
        self._order = self._sort()

    def __getitem__(self, name: str) -> Domain:
        if name not in self.domains:
            hint = _suggest(name, list(self.domains)) or f"; known: {', '.join(self.domains)}"
            raise RegistryError(f"unknown domain {name!r}{hint}")
        return self.domains[name]

    def __contains__(self, name: object) -> bool:
        return name in self.domains

    def __iter__(self) -> Iterator[Domain]:
        return (self.domains[name] for name in self._order)

    def __len__(self) -> int:
        return len(self.domains)

    def names(self) -> list[str]:
        """Domain names in alphabetical order."""
        return list(self.domains)

    def topological_order(self) -> list[str]:
        """Domain names with every dependency before its consumers; ties broken alphabetically."""
        return list(self._order)

    def products(self) -> list[DataProduct]:
        """Every data product of the mesh, domains in topological order."""
        return [product for domain in self for product in domain.data_products]

    def product(self, qualified: str) -> DataProduct:
        """The data product named 'domain.product'."""
        known = sorted(p.qualified_name for p in self.products())
        if qualified in known:
            domain, _, name = qualified.partition(".")
            return self.domains[domain].product(name)
        hint = _suggest(qualified, known) or f"; published products: {', '.join(known)}"
        raise RegistryError(f"unknown data product {qualified!r}{hint}")

    def consumers(self, qualified: str) -> list[str]:
        """Names of the domains that declare `qualified` as a dependency, alphabetical."""
        self.product(qualified)
        return [d.name for d in self.domains.values() if qualified in d.dependencies]

    def _check_dependencies(self) -> None:
        known = sorted(p.qualified_name for d in self.domains.values() for p in d.data_products)
        for domain in self.domains.values():
            for index, dep in enumerate(domain.dependencies):
                if dep not in known:
                    others = [q for q in known if not q.startswith(f"{domain.name}.")]
                    hint = _suggest(dep, others) or f"; published products: {', '.join(others)}"
                    raise RegistryError(
                        f"{_show(domain.file)}: dependencies[{index}]: "
                        f"{dep!r} is not a published data product{hint}"
                    )

    def _sort(self) -> list[str]:
        """Kahn's algorithm with a heap, so ties come out alphabetically; raises on a cycle."""
        edges = {name: d.dependency_domains() for name, d in self.domains.items()}
        waiting = {name: len(deps) for name, deps in edges.items()}
        ready = sorted(name for name, count in waiting.items() if count == 0)
        order: list[str] = []
        while ready:
            name = heapq.heappop(ready)
            order.append(name)
            for consumer, deps in edges.items():
                if name in deps:
                    waiting[consumer] -= 1
                    if waiting[consumer] == 0:
                        heapq.heappush(ready, consumer)
        if len(order) < len(edges):
            # every domain left over still waits on another left-over one, so walking them
            # upstream must come back to a domain already seen: that loop is the cycle
            path, name = [], min(set(edges) - set(order))
            while name not in path:
                path.append(name)
                name = min(edges[name] - set(order))
            cycle = [*path[path.index(name) :], name]
            raise RegistryError(
                f"{_show(self.domains[name].file)}: dependencies: cycle {' -> '.join(cycle)}; "
                "remove one of these dependencies so data flows one way"
            )
        return order


def _suggest(word: str, options: list[str]) -> str:
    """'; did you mean X?' for the closest option, or '' when none is close."""
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _show(path: Path) -> str:
    """A path relative to the working directory when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _describe(error: Any) -> str:
    """One pydantic error as 'field: what is wrong; how to fix'."""
    loc = tuple(error["loc"])
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    if error["type"] == "extra_forbidden":
        models: dict[str, type[BaseModel]] = {"slos": SLOs, "data_products": DataProduct}
        model = models.get(str(loc[0]), Domain)
        allowed = [key for key in model.model_fields if key not in ("path", "domain")]
        hint = _suggest(str(loc[-1]), allowed) or f"; allowed keys: {', '.join(allowed)}"
        return f"{field}: unknown key{hint}"
    if error["type"] == "value_error":
        return f"{field}: {error['msg'].removeprefix('Value error, ')}"
    hint = _HINTS.get(str(loc[0]), "")
    what = error["msg"][0].lower() + error["msg"][1:]
    if error["type"] == "missing" or error.get("input", "") is None:
        what = "missing"
    elif error["type"] == "string_pattern_mismatch":
        what = f"{error['input']!r} must be snake_case (lowercase letters, digits, _)"
    return f"{field}: {what}; {hint or 'compare with domains/ventas/domain.yml'}"


def load_domain(path: Path) -> Domain:
    """The domain defined by one domain.yml file, validated."""
    path, shown = Path(path), _show(Path(path))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"{shown}: file not found; create it (copy domains/ventas)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RegistryError(
            f"{shown}{line}: malformed YAML: {problem}; fix indentation or quoting on that line"
        ) from None
    if not isinstance(raw, dict):
        raise RegistryError(f"{shown}: expected a mapping of keys; start with 'name: <domain>'")
    folder = path.parent.name
    if "name" in raw and raw["name"] != folder:
        raise RegistryError(
            f"{shown}: name: {raw['name']!r} does not match its folder {folder!r}; "
            f"set name: {folder} or rename the folder"
        )
    if "path" in raw:
        raise RegistryError(f"{shown}: path: unknown key; remove it, the folder is the path")
    data = {**raw, "path": path.parent}
    if isinstance(raw.get("data_products"), list):
        data["data_products"] = [
            {**p, "domain": folder} if isinstance(p, dict) else p for p in raw["data_products"]
        ]
    try:
        return Domain.model_validate(data)
    except ValidationError as exc:
        problems = " | ".join(_describe(error) for error in exc.errors())
        raise RegistryError(f"{shown}: {problems}") from None


def load_registry(domains_dir: Path | None = None) -> Registry:
    """Every domain found as `<domains_dir>/<name>/domain.yml`, validated as one mesh."""
    if domains_dir is None:
        from lakehouse.config import get_settings

        domains_dir = get_settings().domains_dir
    folder, shown = Path(domains_dir), _show(Path(domains_dir))
    if not folder.is_dir():
        raise RegistryError(f"{shown}: domains folder not found; set MESH_DOMAINS_DIR to it")
    files = sorted(p / DOMAIN_FILE for p in folder.iterdir() if (p / DOMAIN_FILE).is_file())
    if not files:
        raise RegistryError(f"{shown}: no domain folders; add <name>/{DOMAIN_FILE} (copy ventas)")
    return Registry({domain.name: domain for domain in map(load_domain, files)})
