from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakehouse.registry import (
    RegistryError,
    load_domain,
    load_registry,
    parse_budget,
    parse_duration,
    parse_fraction,
)

REAL_DOMAINS = Path(__file__).resolve().parents[1] / "domains"
DROP = object()


def domain_data(name: str, /, **fields: Any) -> dict[str, Any]:
    """A valid domain.yml mapping for `name`, with `fields` overriding (DROP removes a key)."""
    data: dict[str, Any] = {
        "name": name,
        "owner": f"{name}-team@company.com",
        "mission": f"Provide {name} data products",
        "data_products": [
            {"name": "orders", "description": "One row per order."},
            {"name": "returns", "description": "One row per returned item."},
        ],
        "slos": {
            "latency_p99": "15 minutes",
            "availability": "99.9%",
            "completeness": "99.5%",
            "freshness": "20 minutes",
        },
        "dependencies": [],
        "budget_monthly": 1000,
        "compliance": [],
    }
    data.update(fields)
    return {key: value for key, value in data.items() if value is not DROP}


def write_domain(root: Path, name: str, /, text: str | None = None, **fields: Any) -> Path:
    """Write root/name/domain.yml from raw `text` or from domain_data(name, **fields)."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "domain.yml"
    path.write_text(text if text is not None else yaml.safe_dump(domain_data(name, **fields)))
    return path


def load_error(root: Path) -> str:
    """The single-line message of the RegistryError raised when loading `root`."""
    with pytest.raises(RegistryError) as info:
        load_registry(root)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_real_registry_loads() -> None:
    registry = load_registry(REAL_DOMAINS)
    assert registry.names() == ["finanzas", "logistica", "marketing", "producto", "ventas"]
    assert len(registry.products()) == 16
    order = registry.topological_order()
    assert order.index("producto") < order.index("ventas")
    assert order.index("ventas") < min(order.index("logistica"), order.index("finanzas"))
    assert [d.name for d in registry] == order
    assert registry.consumers("ventas.daily_revenue") == ["finanzas", "logistica"]
    assert registry.consumers("producto.catalog") == ["marketing", "ventas"]


def test_real_registry_values() -> None:
    registry = load_registry(REAL_DOMAINS)
    ventas = registry["ventas"]
    assert ventas.owner == "sales-team@company.com"
    assert ventas.slos.latency_p99 == timedelta(minutes=15)
    assert ventas.slos.freshness == timedelta(minutes=20)
    assert ventas.slos.availability == pytest.approx(0.999)
    assert ventas.slos.completeness == pytest.approx(0.995)
    assert ventas.budget_monthly == 2000
    assert ventas.path == REAL_DOMAINS / "ventas"
    assert registry["finanzas"].compliance == ["PCI-DSS", "SOX"]
    assert registry["marketing"].dependency_domains() == {"ventas", "producto"}
    assert registry.product("ventas.daily_revenue").qualified_name == "ventas.daily_revenue"
    for product in registry.products():
        assert product.description.endswith(".")


def test_default_domains_dir_follows_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = pytest.importorskip("lakehouse.config")
    write_domain(tmp_path, "alpha")
    monkeypatch.setenv("MESH_DOMAINS_DIR", str(tmp_path))
    config.reset_settings()
    try:
        assert load_registry().names() == ["alpha"]
    finally:
        monkeypatch.delenv("MESH_DOMAINS_DIR")
        config.reset_settings()


def test_sixth_domain_is_discovered_by_folder(tmp_path: Path) -> None:
    root = tmp_path / "domains"
    shutil.copytree(REAL_DOMAINS, root)
    write_domain(root, "soporte", dependencies=["ventas.customer_transaction_history"])
    registry = load_registry(root)
    assert len(registry) == 6
    assert registry.topological_order()[-1] == "soporte"
    assert registry.consumers("ventas.customer_transaction_history") == [
        "finanzas",
        "logistica",
        "marketing",
        "soporte",
    ]
    assert registry["soporte"].product("orders").qualified_name == "soporte.orders"


def test_folders_without_domain_file_are_ignored(tmp_path: Path) -> None:
    write_domain(tmp_path, "alpha")
    (tmp_path / "__pycache__").mkdir()
    assert load_registry(tmp_path).names() == ["alpha"]


def test_lookups_suggest_the_closest_name() -> None:
    registry = load_registry(REAL_DOMAINS)
    with pytest.raises(RegistryError, match=r"did you mean 'ventas\.daily_revenue'"):
        registry.product("ventas.daily_revenu")
    with pytest.raises(RegistryError, match=r"did you mean 'ventas\.daily_revenue'"):
        registry.consumers("ventaz.daily_revenue")
    with pytest.raises(RegistryError, match="did you mean 'catalog'"):
        registry["producto"].product("catalogue")
    with pytest.raises(RegistryError, match="did you mean 'ventas'"):
        registry["venta"]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"owner": DROP}, r"alpha/domain\.yml: owner: missing; add owner: <team>@company\.com"),
        ({"owner": None}, r"alpha/domain\.yml: owner: missing; add owner: "),
        ({"owner": "sales team"}, r"domain\.yml: owner: 'sales team' is not an email; write e\.g"),
        ({"ownr": "a@b.com"}, r"domain\.yml: ownr: unknown key; did you mean 'owner'\?"),
        (
            {"slos": {**domain_data("alpha")["slos"], "data_quality": "99%"}},
            r"domain\.yml: slos\.data_quality: unknown key; allowed keys: latency_p99, ",
        ),
        (
            {"budget_monthly": -5},
            r"domain\.yml: budget_monthly: -5 is negative; set 0 or more USD, e\.g\. ",
        ),
        (
            {"budget_monthly": "lots"},
            r"domain\.yml: budget_monthly: cannot read 'lots' as USD; write e\.g\. budget_monthly",
        ),
        (
            {"slos": {**domain_data("alpha")["slos"], "freshness": "soon"}},
            r"domain\.yml: slos\.freshness: cannot read 'soon' as a duration; write it like "
            r"\"15 minutes\"",
        ),
        (
            {"slos": {**domain_data("alpha")["slos"], "availability": "high"}},
            r"domain\.yml: slos\.availability: cannot read 'high' as a percentage; .*'99\.9%'",
        ),
        (
            {"slos": {"latency_p99": "5 min", "availability": 0.99, "completeness": 0.99}},
            r"domain\.yml: slos\.freshness: missing; write e\.g\. .*freshness: \"20 minutes\"",
        ),
        (
            {"data_products": [{"name": "orders", "description": "x."}] * 2},
            r"domain\.yml: data_products: 'orders' is listed twice; keep one entry",
        ),
        (
            {"data_products": [{"name": "Orders", "description": "x."}]},
            r"domain\.yml: data_products\[0\]\.name: 'Orders' must be snake_case",
        ),
        (
            {"data_products": [{"name": "orders", "descripton": "x."}]},
            r"data_products\[0\]\.descripton: unknown key; did you mean 'description'\?",
        ),
        (
            {"data_products": [{"name": "orders"}]},
            r"domain\.yml: data_products\[0\]\.description: missing; list products as",
        ),
        (
            {"dependencies": ["alpha.orders"]},
            r"domain\.yml: dependencies: 'alpha\.orders' is a dependency on itself; remove it",
        ),
        (
            {"dependencies": ["beta"]},
            r"domain\.yml: dependencies: 'beta' is not domain\.product; write e\.g\. ",
        ),
        ({"name": "alfa"}, r"domain\.yml: name: 'alfa' does not match its folder 'alpha'; set "),
        ({"path": "/tmp"}, r"domain\.yml: path: unknown key; remove it"),
    ],
)
def test_bad_domain_file(tmp_path: Path, fields: dict[str, Any], expected: str) -> None:
    write_domain(tmp_path, "alpha", **fields)
    message = load_error(tmp_path)
    assert str(tmp_path / "alpha" / "domain.yml") in message
    assert re.search(expected, message), message


def test_unknown_dependency_product_suggests_closest(tmp_path: Path) -> None:
    write_domain(tmp_path, "alpha")
    write_domain(tmp_path, "beta", dependencies=["alpha.orderz"])
    message = load_error(tmp_path)
    assert f"{tmp_path / 'beta' / 'domain.yml'}: dependencies[0]: " in message
    assert "'alpha.orderz' is not a published data product; did you mean 'alpha.orders'?" in message


def test_unknown_dependency_domain_lists_other_products(tmp_path: Path) -> None:
    write_domain(tmp_path, "alpha")
    write_domain(tmp_path, "beta", dependencies=["zeta.thing"])
    message = load_error(tmp_path)
    assert "beta/domain.yml: dependencies[0]: 'zeta.thing' is not a published data product" in (
        message
    )
    assert message.endswith("; published products: alpha.orders, alpha.returns")


def test_dependency_cycle_is_named(tmp_path: Path) -> None:
    write_domain(tmp_path, "alpha", dependencies=["beta.orders"])
    write_domain(tmp_path, "beta", dependencies=["gamma.orders"])
    write_domain(tmp_path, "gamma", dependencies=["alpha.returns"])
    write_domain(tmp_path, "delta", dependencies=["alpha.orders"])
    message = load_error(tmp_path)
    assert "alpha/domain.yml: dependencies: cycle alpha -> beta -> gamma -> alpha" in message
    assert "remove one of these dependencies" in message


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    write_domain(tmp_path, "alpha", text="name: alpha\nowner: [a@b.com\nmission: x\n")
    message = load_error(tmp_path)
    assert re.search(r"alpha/domain\.yml:\d+: malformed YAML: .*fix indentation", message)
    assert f"domain.yml:{3}" in message or f"domain.yml:{4}" in message


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    write_domain(tmp_path, "alpha", text="- just\n- a list\n")
    assert "alpha/domain.yml: expected a mapping of keys" in load_error(tmp_path)


def test_missing_or_empty_domains_dir(tmp_path: Path) -> None:
    assert "domains folder not found; set MESH_DOMAINS_DIR" in load_error(tmp_path / "nope")
    assert "no domain folders; add <name>/domain.yml" in load_error(tmp_path)


def test_load_domain_fills_product_domain(tmp_path: Path) -> None:
    domain = load_domain(write_domain(tmp_path, "alpha", budget_monthly="$2,500 USD"))
    assert [p.qualified_name for p in domain.data_products] == ["alpha.orders", "alpha.returns"]
    assert domain.budget_monthly == 2500
    assert domain.file == tmp_path / "alpha" / "domain.yml"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15 minutes", timedelta(minutes=15)),
        ("5 min", timedelta(minutes=5)),
        ("1 hour", timedelta(hours=1)),
        ("2 hours", timedelta(hours=2)),
        ("30s", timedelta(seconds=30)),
        ("90 seconds", timedelta(seconds=90)),
        ("1 day", timedelta(days=1)),
        ("1.5 h", timedelta(minutes=90)),
        (" 10 Minutes ", timedelta(minutes=10)),
        (1200, timedelta(minutes=20)),
        (timedelta(minutes=3), timedelta(minutes=3)),
    ],
)
def test_parse_duration(text: str | int | timedelta, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["soon", "15", "15 fortnights", "minutes", "0 s", -5, True, "", "9" * 30 + " days"]
)
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="15 minutes"):
        parse_duration(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("99.9%", 0.999),
        ("99.5% completeness", 0.995),
        ("99.95 %", 0.9995),
        ("100%", 1.0),
        (0.999, 0.999),
        (1, 1.0),
    ],
)
def test_parse_fraction(text: str | float, expected: float) -> None:
    assert parse_fraction(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["high", "99.9", 99.9, "101%", "-1%", "99.9% of the time", True])
def test_parse_fraction_rejects(text: object) -> None:
    with pytest.raises(ValueError, match=r"99\.9%"):
        parse_fraction(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"), [(2000, 2000.0), ("$2,000", 2000.0), ("1500.50", 1500.5), (0, 0.0)]
)
def test_parse_budget(text: str | int, expected: float) -> None:
    assert parse_budget(text) == expected


@pytest.mark.parametrize("text", ["lots", "-$5", -1, "nan", None])
def test_parse_budget_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="budget_monthly: 2000"):
        parse_budget(text)  # type: ignore[arg-type]
