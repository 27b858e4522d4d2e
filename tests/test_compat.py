"""`mesh contracts check`: ODCS and OpenAPI contract changes against a git revision, classified."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from lakehouse.cli import app
from lakehouse.compat import CompatError, check, compare, openapi_elements
from lakehouse.config import reset_settings

FIXTURES = Path(__file__).parent / "fixtures" / "compat" / "domains"
ODCS = "ventas/contracts/daily_revenue.odcs.yaml"
OPENAPI = "ventas/contracts/openapi.yaml"
DR = "GET /ventas/v2/daily-revenue"
ITEM = f"{DR} response 200.items[]"
SEARCH = "POST /ventas/v2/daily-revenue/search"
Edit = Callable[[dict[str, Any]], object]


def git(root: Path, *args: str) -> str:
    """Run git in a test repository with a fixed identity; its output."""
    ident = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]
    ident += ["-c", "commit.gpgsign=false"]
    done = subprocess.run(["git", *ident, *args], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def make_repo(root: Path, branch: str = "main") -> Path:
    """A git repository whose one commit holds the fixture domains; returns its domains/."""
    shutil.copytree(FIXTURES, root / "domains")
    git(root, "init", "-q", "-b", branch)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base contracts")
    return root / "domains"


@pytest.fixture
def domains(tmp_path: Path) -> Path:
    """The domains/ folder of a fresh git repository on branch main."""
    return make_repo(tmp_path)


@pytest.fixture
def mesh_domains(domains: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The test repository's domains/, set as MESH_DOMAINS_DIR for the CLI."""
    monkeypatch.setenv("MESH_DOMAINS_DIR", str(domains))
    reset_settings()
    yield domains
    reset_settings()


def edit(domains: Path, name: str, change: Edit) -> None:
    """Apply `change` to the parsed contract file and write it back, as a person would."""
    path = domains / name
    raw = yaml.safe_load(path.read_text())
    change(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def prop(raw: dict[str, Any], name: str) -> dict[str, Any]:
    """An ODCS property of daily_revenue."""
    return next(p for p in raw["schema"][0]["properties"] if p["name"] == name)


def schema(raw: dict[str, Any], name: str) -> dict[str, Any]:
    """An OpenAPI component schema."""
    return raw["components"]["schemas"][name]


def param(raw: dict[str, Any], name: str) -> dict[str, Any]:
    """A query parameter of GET /ventas/v2/daily-revenue."""
    return next(p for p in params(raw) if p["name"] == name)


def params(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The parameter list of GET /ventas/v2/daily-revenue."""
    return raw["paths"]["/ventas/v2/daily-revenue"]["get"]["parameters"]


def found(domains: Path, name: str) -> list[tuple[str, str, bool]]:
    """(location, kind, breaking) of every change check() reports for one contract file."""
    diff = next(d for d in check(domains).diffs if d.path == f"domains/{name}")
    return [(c.location, c.kind, c.breaking) for c in diff.changes]


def props(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The ODCS property list of daily_revenue."""
    return raw["schema"][0]["properties"]


def options(raw: dict[str, Any], name: str) -> dict[str, Any]:
    """The logicalTypeOptions of an ODCS property."""
    return prop(raw, name)["logicalTypeOptions"]


def regions(raw: dict[str, Any]) -> list[str]:
    """The valid values of the ODCS region property."""
    return prop(raw, "region")["quality"][0]["arguments"]["validValues"]


def _loosen_region_rule(raw: dict[str, Any]) -> None:
    rule = prop(raw, "region")["quality"][0]
    del rule["mustBe"]
    rule["mustBeLessOrEqualTo"] = 5


def _rename(raw: dict[str, Any]) -> None:
    prop(raw, "transactions_count")["name"] = "orders_count"


def _to_float(raw: dict[str, Any]) -> None:
    prop(raw, "transactions_count").update(logicalType="number", physicalType="Float64")


OPTIONAL_DISCOUNT = {"name": "discount", "logicalType": "number", "physicalType": "Float64"}
REQUIRED_DISCOUNT = {**OPTIONAL_DISCOUNT, "required": True}
ODCS_CASES = [
    pytest.param(
        lambda r: props(r).append(OPTIONAL_DISCOUNT),
        "daily_revenue.discount", "field added", False, id="optional field added",
    ),
    pytest.param(
        lambda r: regions(r).append("AFRICA"),
        "daily_revenue.region", "enum value added", False, id="enum value added",
    ),
    pytest.param(
        lambda r: options(r, "revenue_gross").update(maximum=10**10),
        "daily_revenue.revenue_gross", "limit widened", False, id="maximum raised",
    ),
    pytest.param(
        lambda r: options(r, "transactions_count").update(minimum=-1),
        "daily_revenue.transactions_count", "limit widened", False, id="minimum lowered",
    ),
    pytest.param(
        lambda r: options(r, "note").update(maxLength=500),
        "daily_revenue.note", "limit widened", False, id="maxLength raised",
    ),
    pytest.param(
        lambda r: r["customProperties"][0].update(value=0.05),
        "customProperties.quarantineThreshold", "limit widened", False,
        id="quarantine threshold loosened",
    ),
    pytest.param(
        _loosen_region_rule,
        "daily_revenue.region", "limit widened", False, id="quality rule loosened",
    ),
    pytest.param(
        lambda r: prop(r, "revenue_gross").update(required=False),
        "daily_revenue.revenue_gross", "made optional", False, id="required made optional",
    ),
    pytest.param(
        lambda r: props(r).remove(prop(r, "revenue_gross")),
        "daily_revenue.revenue_gross", "field removed", True, id="field removed",
    ),
    pytest.param(
        _rename,
        "daily_revenue.transactions_count", "field removed", True, id="field renamed",
    ),
    pytest.param(
        lambda r: props(r).append(REQUIRED_DISCOUNT),
        "daily_revenue.discount", "required field added", True, id="required field added",
    ),
    pytest.param(
        _to_float,
        "daily_revenue.transactions_count", "type changed", True, id="logicalType changed",
    ),
    pytest.param(
        lambda r: prop(r, "transactions_count").update(physicalType="Int32"),
        "daily_revenue.transactions_count", "type changed", True, id="physicalType changed",
    ),
    pytest.param(
        lambda r: prop(r, "note").update(required=True),
        "daily_revenue.note", "made required", True, id="optional made required",
    ),
    pytest.param(
        lambda r: options(r, "revenue_gross").update(maximum=10**6),
        "daily_revenue.revenue_gross", "limit narrowed", True, id="maximum lowered",
    ),
    pytest.param(
        lambda r: options(r, "transactions_count").update(minimum=1),
        "daily_revenue.transactions_count", "limit narrowed", True, id="minimum raised",
    ),
    pytest.param(
        lambda r: options(r, "note").update(maxLength=20),
        "daily_revenue.note", "limit narrowed", True, id="maxLength lowered",
    ),
    pytest.param(
        lambda r: r["customProperties"][0].update(value=0.001),
        "customProperties.quarantineThreshold", "limit narrowed", True,
        id="quarantine threshold tightened",
    ),
    pytest.param(
        lambda r: regions(r).remove("APAC"),
        "daily_revenue.region", "enum value removed", True, id="enum value removed",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("change", "location", "kind", "breaking"), ODCS_CASES)
def test_odcs_edit_is_classified(
    domains: Path, change: Edit, location: str, kind: str, breaking: bool
) -> None:
    edit(domains, ODCS, change)
    changes = found(domains, ODCS)
    assert (location, kind, breaking) in changes
    assert {b for _, _, b in changes} == {breaking}, changes


def test_a_rename_shows_as_the_old_name_removed_and_the_new_one_added(domains: Path) -> None:
    edit(domains, ODCS, _rename)
    assert found(domains, ODCS) == [
        ("daily_revenue.orders_count", "required field added", True),
        ("daily_revenue.transactions_count", "field removed", True),
    ]


def api_prop(raw: dict[str, Any], name: str) -> dict[str, Any]:
    """A property of the OpenAPI DailyRevenue schema."""
    return schema(raw, "DailyRevenue")["properties"][name]


def region_values(raw: dict[str, Any]) -> list[str]:
    """The enum of the region query parameter (inside its nullable anyOf)."""
    return param(raw, "region")["schema"]["anyOf"][0]["enum"]


def _add_param(raw: dict[str, Any], required: bool) -> None:
    new = {"name": "currency", "in": "query", "required": required, "schema": {"type": "string"}}
    params(raw).append(new)


def _add_endpoint(raw: dict[str, Any]) -> None:
    raw["paths"]["/ventas/v2/top-days"] = {"get": {"responses": {"200": {"description": "ok"}}}}


def _drop_search_region(raw: dict[str, Any]) -> None:
    schema(raw, "SearchRequest")["properties"]["regions"]["items"]["enum"].remove("APAC")


OPENAPI_CASES = [
    pytest.param(
        lambda r: schema(r, "DailyRevenue")["properties"].update(discount={"type": "number"}),
        f"{ITEM}.discount", "field added", False, id="optional property added",
    ),
    pytest.param(
        lambda r: api_prop(r, "region")["enum"].append("AFRICA"),
        f"{ITEM}.region", "enum value added", False, id="response enum value added",
    ),
    pytest.param(
        lambda r: region_values(r).append("AFRICA"),
        f"{DR} query region", "enum value added", False, id="parameter enum value added",
    ),
    pytest.param(
        lambda r: param(r, "limit")["schema"].update(maximum=500),
        f"{DR} query limit", "limit widened", False, id="maximum raised",
    ),
    pytest.param(
        lambda r: api_prop(r, "note").update(maxLength=500),
        f"{ITEM}.note", "limit widened", False, id="maxLength raised",
    ),
    pytest.param(
        _add_endpoint,
        "GET /ventas/v2/top-days", "endpoint added", False, id="new endpoint",
    ),
    pytest.param(
        lambda r: _add_param(r, required=False),
        f"{DR} query currency", "parameter added", False, id="new optional query parameter",
    ),
    pytest.param(
        lambda r: schema(r, "DailyRevenue")["properties"].pop("transactions_count"),
        f"{ITEM}.transactions_count", "field removed", True, id="property removed",
    ),
    pytest.param(
        lambda r: api_prop(r, "revenue_gross").update(type="string"),
        f"{ITEM}.revenue_gross", "type changed", True, id="property type changed",
    ),
    pytest.param(
        lambda r: api_prop(r, "date").update(format="date-time"),
        f"{ITEM}.date", "type changed", True, id="property format changed",
    ),
    pytest.param(
        lambda r: param(r, "limit")["schema"].update(type="string"),
        f"{DR} query limit", "type changed", True, id="parameter type changed",
    ),
    pytest.param(
        lambda r: schema(r, "DailyRevenue")["required"].append("note"),
        f"{ITEM}.note", "made required", True, id="response property made required",
    ),
    pytest.param(
        lambda r: schema(r, "SearchRequest")["required"].append("min_revenue"),
        f"{SEARCH} request body.min_revenue", "made required", True,
        id="request property made required",
    ),
    pytest.param(
        lambda r: param(r, "region").update(required=True),
        f"{DR} query region", "made required", True, id="parameter made required",
    ),
    pytest.param(
        lambda r: _add_param(r, required=True),
        f"{DR} query currency", "required parameter added", True,
        id="new required query parameter",
    ),
    pytest.param(
        lambda r: param(r, "limit")["schema"].update(maximum=50),
        f"{DR} query limit", "limit narrowed", True, id="maximum lowered",
    ),
    pytest.param(
        lambda r: region_values(r).remove("APAC"),
        f"{DR} query region", "enum value removed", True, id="parameter enum value removed",
    ),
    pytest.param(
        _drop_search_region,
        f"{SEARCH} request body.regions[]", "enum value removed", True,
        id="request enum value removed",
    ),
    pytest.param(
        lambda r: api_prop(r, "note").update(enum=["reconciled", "disputed"]),
        f"{ITEM}.note", "enum introduced", True, id="enum restriction added",
    ),
    pytest.param(
        lambda r: r["paths"].pop("/ventas/v2/daily-revenue/search"),
        SEARCH, "endpoint removed", True, id="endpoint removed",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("change", "location", "kind", "breaking"), OPENAPI_CASES)
def test_openapi_edit_is_classified(
    domains: Path, change: Edit, location: str, kind: str, breaking: bool
) -> None:
    edit(domains, OPENAPI, change)
    changes = found(domains, OPENAPI)
    assert (location, kind, breaking) in changes
    assert {b for _, _, b in changes} == {breaking}, changes


def _one_param(schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI document whose only endpoint takes one query parameter with `schema`."""
    param = {"name": "amount", "in": "query", "schema": schema}
    return {"paths": {"/ventas/v2/x": {"get": {"parameters": [param], "responses": {}}}}}


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        ({"exclusiveMinimum": 0}, {"minimum": 0}, "limit widened"),  # OpenAPI 3.1
        ({"minimum": 0, "exclusiveMinimum": True}, {"minimum": 0}, "limit widened"),  # 3.0
        ({"minimum": 0}, {"exclusiveMinimum": 0}, "limit narrowed"),
        ({"maximum": 10}, {"minimum": 1, "maximum": 10}, "limit narrowed"),
        ({}, {"pattern": "^[0-9]+$"}, "constraint added"),
        ({"pattern": "^[0-9]+$"}, {}, "constraint dropped"),
    ],
)
def test_exclusive_bounds_and_patterns_compare_as_limits(
    before: dict[str, Any], after: dict[str, Any], kind: str
) -> None:
    old = openapi_elements(_one_param({"type": "number", **before}))
    new = openapi_elements(_one_param({"type": "number", **after}))
    assert [c.kind for c in compare(old, new)] == [kind]


def test_an_unchanged_tree_has_no_changes_and_passes(domains: Path) -> None:
    edit(domains, ODCS, lambda r: None)  # rewritten with other quoting: same contract
    report = check(domains)
    assert report.ok and not any(d.changes for d in report.diffs)
    assert [d.path for d in report.diffs] == [f"domains/{ODCS}", f"domains/{OPENAPI}"]


def test_new_contracts_are_safe_and_removed_ones_break(domains: Path) -> None:
    pricing = yaml.safe_load((domains / ODCS).read_text())
    pricing.update(id="ventas.pricing", dataProduct="pricing", version="1.0.0")
    (domains / "ventas/contracts/pricing.odcs.yaml").write_text(yaml.safe_dump(pricing))
    added = found(domains, "ventas/contracts/pricing.odcs.yaml")
    assert added == [("(file)", "contract added", False)]
    assert check(domains).ok
    for name in (ODCS, OPENAPI):
        (domains / name).unlink()
        assert found(domains, name) == [("(file)", "contract removed", True)]
    report = check(domains)
    removed = next(d for d in report.diffs if d.path == f"domains/{ODCS}")
    assert not report.ok and removed.fix().startswith(f"restore domains/{ODCS}")


def test_a_breaking_odcs_change_with_a_new_major_version_passes(domains: Path) -> None:
    def drop_field(raw: dict[str, Any]) -> None:
        props(raw).remove(prop(raw, "note"))

    edit(domains, ODCS, drop_field)
    report = check(domains)
    assert not report.ok
    assert "raise version 2.1.0 to 3.0.0" in report.summary()[1]
    edit(domains, ODCS, lambda r: r.update(version="2.2.0"))
    assert not check(domains).ok
    edit(domains, ODCS, lambda r: r.update(version="3.0.0"))
    report = check(domains)
    diff = next(d for d in report.diffs if d.path == f"domains/{ODCS}")
    assert report.ok and diff.major_bumped and diff.failures == []
    assert [(c.kind, c.breaking) for c in diff.changes] == [("field removed", True)]
    assert "1 breaking with a new major version, 0 breaking without" in report.summary()[0]


def test_a_new_api_major_under_a_new_prefix_may_drop_the_old_endpoints(domains: Path) -> None:
    def move_to_v3(raw: dict[str, Any]) -> None:
        raw["paths"] = {k.replace("/v2/", "/v3/"): v for k, v in raw["paths"].items()}

    edit(domains, OPENAPI, move_to_v3)
    report = check(domains)
    assert not report.ok
    assert "raise info.version 2.1.0 to 3.0.0" in report.summary()[1]
    edit(domains, OPENAPI, lambda r: r["info"].update(version="3.0.0"))
    report = check(domains)
    changes = found(domains, OPENAPI)
    assert report.ok
    assert (DR, "endpoint removed", True) in changes
    assert ("GET /ventas/v3/daily-revenue", "endpoint added", False) in changes


def test_breaking_changes_name_the_consumers_of_the_product(domains: Path) -> None:
    edit(domains, ODCS, lambda r: props(r).remove(prop(r, "revenue_gross")))
    edit(domains, OPENAPI, lambda r: r["paths"].pop("/ventas/v2/daily-revenue/search"))
    diffs = {d.path: d for d in check(domains).diffs}
    odcs, api = diffs[f"domains/{ODCS}"], diffs[f"domains/{OPENAPI}"]
    assert odcs.product == "ventas.daily_revenue"
    assert odcs.consumers == (
        "finanzas (domain)",
        "finanzas-service (account)",
        "bi-dashboard (account)",
    )
    assert api.product == "ventas API"
    assert api.consumers == ("finanzas-service (account)", "bi-dashboard (account)")
    (domains / "access.yml").unlink()  # the access file is optional
    assert next(d for d in check(domains).diffs if d.path == odcs.path).consumers == (
        "finanzas (domain)",
    )


def test_the_default_revision_is_the_merge_base_with_main(domains: Path) -> None:
    root = domains.parent
    git(root, "checkout", "-q", "-b", "feature")
    edit(domains, ODCS, lambda r: props(r).remove(prop(r, "note")))
    git(root, "commit", "-q", "-am", "drop note")
    report = check(domains)
    assert report.against == "merge-base HEAD main" and not report.ok
    assert report.commit == git(root, "rev-parse", "main").strip()
    assert check(domains, against="HEAD").ok
    assert not check(domains, against="HEAD~1").ok


def test_without_a_main_branch_the_check_compares_with_head(tmp_path: Path) -> None:
    domains = make_repo(tmp_path, branch="trunk")
    edit(domains, ODCS, lambda r: prop(r, "note").update(required=True))
    report = check(domains)
    assert report.against == "HEAD" and not report.ok


def test_outside_git_or_with_an_unknown_revision_the_error_says_what_to_do(
    tmp_path_factory: pytest.TempPathFactory, domains: Path
) -> None:
    plain = tmp_path_factory.mktemp("plain") / "domains"
    shutil.copytree(FIXTURES, plain)
    with pytest.raises(CompatError, match="not in a git repository; run the check in a git clone"):
        check(plain)
    with pytest.raises(CompatError, match=r"--against nope: no such commit in .*git log"):
        check(domains, against="nope")


def test_malformed_contract_errors_name_the_file_and_line(domains: Path) -> None:
    (domains / OPENAPI).write_text("openapi: 3.1.0\npaths: [unclosed\n")
    with pytest.raises(CompatError, match=rf"domains/{OPENAPI}:3: malformed YAML"):
        check(domains)


def test_cli_exits_1_with_the_breaking_change_and_0_on_a_clean_tree(mesh_domains: Path) -> None:
    runner = CliRunner()
    clean = runner.invoke(app, ["contracts", "check"])
    assert clean.exit_code == 0, clean.output
    assert "contracts check ok: 0 unversioned breaking changes" in clean.output
    edit(mesh_domains, ODCS, lambda r: props(r).remove(prop(r, "revenue_gross")))
    broken = runner.invoke(app, ["contracts", "check"])
    assert broken.exit_code == 1, broken.output
    assert (
        f"BREAKING domains/{ODCS}: daily_revenue.revenue_gross: field removed (number/Float64); "
        "consumers: finanzas (domain), finanzas-service (account), bi-dashboard (account); "
        f"fix: raise version 2.1.0 to 3.0.0 in domains/{ODCS}, or undo the change"
    ) in broken.output
    assert "contracts check FAILED: 1 unversioned breaking changes" in broken.output
    as_json = runner.invoke(app, ["contracts", "check", "--json", "--against", "HEAD"])
    data = json.loads(as_json.output)
    assert as_json.exit_code == 1 and data["ok"] is False
    removed = next(d for d in data["diffs"] if d["path"] == f"domains/{ODCS}")
    assert removed["changes"][0]["kind"] == "field removed" and removed["major_bumped"] is False


def test_cli_errors_are_one_line_without_a_traceback(
    tmp_path_factory: pytest.TempPathFactory, domains: Path
) -> None:
    env = {**os.environ, "MESH_DOMAINS_DIR": str(domains), "COLUMNS": "200"}
    mesh = [sys.executable, "-c", "from lakehouse.cli import main; main()", "contracts", "check"]
    unknown = subprocess.run([*mesh, "--against", "nope"], env=env, capture_output=True, text=True)
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
    assert "--against nope: no such commit" in unknown.stderr
    plain = tmp_path_factory.mktemp("plain") / "domains"
    shutil.copytree(FIXTURES, plain)
    env["MESH_DOMAINS_DIR"] = str(plain)
    outside = subprocess.run(mesh, env=env, capture_output=True, text=True)
    assert outside.returncode == 1 and "not in a git repository" in outside.stderr
