"""Access control of the data product APIs: keys, grants, rate limits, freshness and metrics."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.api import create_app
from lakehouse import access, storage
from lakehouse.api import RateLimiter
from lakehouse.cli import app as cli
from lakehouse.config import get_settings
from lakehouse.registry import load_registry
from tests.test_api import gold_daily_revenue

URL = "/ventas/v2/daily-revenue"
PARAMS = {"date": "2024-01-15", "region": "EU"}


@pytest.fixture
def app_client(data_dir: Path) -> TestClient:
    """A keyless client of the mesh app with ventas daily revenue built."""
    storage.write(
        gold_daily_revenue(), get_settings().table_path("ventas", "gold", "daily_revenue")
    )
    return TestClient(create_app())


def _get(client: TestClient, key: str | None, params: dict | None = None) -> tuple[int, dict]:
    headers = {"X-API-Key": key} if key is not None else {}
    response = client.get(URL, params=params or PARAMS, headers=headers)
    return response.status_code, response.json()


def test_no_key_is_401_telling_how_to_get_one(app_client: TestClient) -> None:
    status, body = _get(app_client, None)

    assert status == 401
    assert body["error_code"] == "missing_api_key"
    assert "X-API-Key" in body["message"] and "mesh keys create" in body["message"]


def test_wrong_key_is_401(app_client: TestClient, api_key: Callable[[str], str]) -> None:
    real = api_key("ventas-service")

    assert _get(app_client, real[:-1] + ("x" if real[-1] != "x" else "y"))[0] == 401
    assert _get(app_client, "")[1]["error_code"] == "missing_api_key"
    assert _get(app_client, "mesh_nothing")[1]["error_code"] == "invalid_api_key"


def test_key_without_grant_is_403_naming_the_grant_and_approver(
    app_client: TestClient, api_key: Callable[[str], str]
) -> None:
    status, body = _get(app_client, api_key("producto-service"))

    assert status == 403
    assert body["error_code"] == "missing_grant"
    assert body["details"] == {
        "account": "producto-service",
        "product": "ventas.daily_revenue",
        "approver": "sales-team@company.com",
    }
    assert "domains/access.yml" in body["message"]


@pytest.mark.parametrize(
    "account", ["ventas-service", "logistica-service", "finanzas-service", "platform-admin"]
)
def test_owner_granted_and_admin_accounts_read_the_product(
    app_client: TestClient, api_key: Callable[[str], str], account: str
) -> None:
    response = app_client.get(URL, params=PARAMS, headers={"X-API-Key": api_key(account)})

    assert response.status_code == 200
    assert response.json()["items"][0]["region"] == "EU"
    assert response.headers["X-Data-Version"] == "0"


def test_data_version_header_follows_new_commits(
    app_client: TestClient, api_key: Callable[[str], str]
) -> None:
    headers = {"X-API-Key": api_key("ventas-service")}
    path = get_settings().table_path("ventas", "gold", "daily_revenue")
    storage.write(gold_daily_revenue(), path)

    assert app_client.get(URL, params=PARAMS, headers=headers).headers["X-Data-Version"] == "1"


def test_rate_limit_is_429_with_retry_after(
    app_client: TestClient, api_key: Callable[[str], str]
) -> None:
    key = api_key("ventas-service")  # 100 requests per minute, the default
    statuses = [_get(app_client, key)[0] for _ in range(100)]
    response = app_client.get(URL, params=PARAMS, headers={"X-API-Key": key})

    assert statuses == [200] * 100
    assert response.status_code == 429
    assert response.json()["error_code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    other_key = api_key("ventas-service")
    assert _get(app_client, other_key)[0] == 200  # the limit is per key


def test_limit_counts_requests_in_a_sliding_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("lakehouse.api.time.monotonic", lambda: now[0])
    limiter = RateLimiter()

    for _ in range(3):
        assert limiter.retry_after("k", 3) is None
        now[0] += 10.0
    assert limiter.retry_after("k", 3) == pytest.approx(30.0)  # the first leaves at t=60
    now[0] += 30.0
    assert limiter.retry_after("k", 3) is None
    assert limiter.retry_after("k", 3) == pytest.approx(10.0)
    assert limiter.retry_after("other", 3) is None


def test_require_fresh_is_503_when_older_than_the_freshness_slo(
    app_client: TestClient, api_key: Callable[[str], str]
) -> None:
    headers = {"X-API-Key": api_key("ventas-service")}
    fresh = app_client.get(URL, params={**PARAMS, "require_fresh": "true"}, headers=headers)
    assert fresh.status_code == 200

    # Age the only commit by a day: rewrite its commitInfo timestamp in the Delta log.
    path = get_settings().table_path("ventas", "gold", "daily_revenue")
    storage.write(gold_daily_revenue(), path)
    log = path / "_delta_log" / "00000000000000000001.json"
    actions = [json.loads(line) for line in log.read_text().splitlines()]
    for action in actions:
        if "commitInfo" in action:
            action["commitInfo"]["timestamp"] -= 86_400_000
    log.write_text("\n".join(json.dumps(a) for a in actions) + "\n")
    (path / "_delta_log" / "touch").write_text("")  # a new log entry, as a commit would make

    stale = app_client.get(URL, params={**PARAMS, "require_fresh": "true"}, headers=headers)
    relaxed = app_client.get(URL, params=PARAMS, headers=headers)

    assert stale.status_code == 503
    assert stale.json()["error_code"] == "stale_product"
    assert "freshness SLO" in stale.json()["message"]
    assert relaxed.status_code == 200


def test_health_and_metrics_need_no_key(
    app_client: TestClient, api_key: Callable[[str], str]
) -> None:
    key = api_key("ventas-service")
    assert _get(app_client, key)[0] == 200
    assert _get(app_client, key, {"date": "2024-01-15", "region": "MARS"})[0] == 400
    assert _get(app_client, None)[0] == 401

    assert app_client.get("/health").status_code == 200
    metrics = app_client.get("/metrics")

    assert metrics.status_code == 200
    text = metrics.text
    ok = re.search(
        r'mesh_api_requests_total\{endpoint="/ventas/v2/daily-revenue",method="GET",'
        r'status="200"\} (\d+)',
        text,
    )
    assert ok and int(ok.group(1)) == 1
    assert 'status="400"} 1.0' in text and 'status="401"} 1.0' in text
    assert 'mesh_api_request_duration_seconds_bucket{endpoint="/ventas/v2/daily-revenue"' in text
    age = re.search(r'mesh_data_product_age_seconds\{product="ventas.daily_revenue"\} (\S+)', text)
    assert age and 0 <= float(age.group(1)) < 600
    assert 'mesh_data_product_version{product="ventas.daily_revenue"} 0.0' in text


def test_keys_are_stored_only_as_digests(data_dir: Path) -> None:
    key = access.create_key("marketing-service")
    stored = access.keys_file().read_text()

    assert key not in stored
    assert access.digest(key) in stored
    assert access.account_for_key(key) == "marketing-service"
    assert access.keys_file().stat().st_mode & 0o077 == 0
    assert [k["account"] for k in access.list_keys()] == ["marketing-service"]


def test_keys_cli_creates_once_and_lists_accounts(data_dir: Path) -> None:
    runner = CliRunner()
    created = runner.invoke(cli, ["keys", "create", "platform-admin"])
    listed = runner.invoke(cli, ["keys", "list"], env={"COLUMNS": "200"})
    unknown = runner.invoke(cli, ["keys", "create", "nobody"])

    assert created.exit_code == 0
    key = re.search(r"mesh_[0-9a-f]{8}_\S+", created.output).group(0)
    assert access.account_for_key(key) == "platform-admin"
    assert listed.exit_code == 0
    assert "platform-admin" in listed.output and key not in listed.output
    assert "every product except restricted" in listed.output
    assert unknown.exit_code != 0
    assert "unknown service account 'nobody'" in str(unknown.exception)


def _policy_file(tmp_path: Path, edit: Callable[[dict], None]) -> Path:
    raw = yaml.safe_load(access.access_file().read_text())
    edit(raw)
    path = tmp_path / "access.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda r: r["grants"][0].update(approved_by="someone@company.com"), "only the product"),
        (lambda r: r["grants"][0].update(product="ventas.nothing"), "unknown product"),
        (lambda r: r["grants"][0].update(account="ghost"), "unknown account 'ghost'"),
        (lambda r: r["accounts"].append(dict(r["accounts"][0])), "listed twice"),
        (lambda r: r["accounts"][0].update(domain="sales"), "unknown domain 'sales'"),
        (
            lambda r: r["grants"].append(
                {
                    "account": "platform-admin",
                    "product": "finanzas.fraud_scores",
                    "approved_by": "payments-team@company.com",
                    "approved_on": "2026-01-01",
                }
            ),
            "restricted",
        ),
        (lambda r: r["accounts"][0].update(rate_limit_per_minute=0), "rate_limit_per_minute"),
    ],
)
def test_bad_access_files_are_refused_naming_the_problem(
    tmp_path: Path, edit: Callable[[dict], None], expected: str
) -> None:
    path = _policy_file(tmp_path, edit)

    with pytest.raises(access.AccessError, match=re.escape(expected)) as error:
        access.load_policy(path, load_registry())
    assert str(path) in str(error.value)


def test_restricted_products_are_readable_only_by_their_domain() -> None:
    policy = access.load_policy()

    assert policy.allows(policy.account("finanzas-service"), "finanzas.fraud_scores")
    assert not policy.allows(policy.account("platform-admin"), "finanzas.fraud_scores")
    assert policy.allows(policy.account("platform-admin"), "marketing.campaign_metrics")
    assert not policy.allows(policy.account("marketing-service"), "finanzas.fraud_scores")


def test_every_declared_dependency_has_a_grant() -> None:
    """A domain reading another's product in its pipeline may also read it over the API."""
    policy = access.load_policy()
    for domain in load_registry():
        accounts = [a for a in policy.accounts if a.domain == domain.name]
        assert len(accounts) == 1, f"domain {domain.name} needs exactly one service account"
        for dependency in domain.dependencies:
            assert policy.allows(accounts[0], dependency), (domain.name, dependency)


def test_broken_access_file_is_503_not_500(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    domains = tmp_path / "domains"
    shutil.copytree(get_settings().domains_dir, domains)
    monkeypatch.setenv("MESH_DOMAINS_DIR", str(domains))
    from lakehouse.config import reset_settings

    reset_settings()
    key = access.create_key("ventas-service")
    (domains / "access.yml").write_text("accounts: [")
    storage.write(
        gold_daily_revenue(), get_settings().table_path("ventas", "gold", "daily_revenue")
    )

    status, body = _get(TestClient(create_app()), key)

    assert status == 503
    assert body["error_code"] == "access_policy_unavailable"
    assert "not valid YAML" in body["message"]
