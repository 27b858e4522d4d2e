"""Shared FastAPI pieces every domain API uses: errors, access control, health and metrics.

Every error a client can see, whether raised by a domain (`ApiError`), by request validation or
by a bug, is answered as `{"error_code": ..., "message": ..., "details": ...}` so consumers
handle failures one way across the mesh. Unexpected errors never leak a traceback.

A route declares the product it serves with `Depends(product_access("domain.product"))`. That
one dependency checks the `X-API-Key`, the account's grant and its rate limit, pins the Delta
version served (sent back as `X-Data-Version`) and, when the caller passes
`require_fresh=true`, refuses with 503 a product older than its domain's freshness SLO.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import polars as pl
from fastapi import APIRouter, FastAPI, Query, Request, Response, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from lakehouse import __version__, access, storage
from lakehouse.config import get_settings
from lakehouse.metrics import Metrics, MetricsMiddleware
from lakehouse.registry import load_registry

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    429: "too_many_requests",
}


class ErrorBody(BaseModel):
    """The JSON body of every error response."""

    error_code: str = Field(description="Stable machine-readable code, e.g. 'unknown_region'")
    message: str = Field(description="What went wrong and how to fix it, for people")
    details: Any = Field(default=None, description="Structured context, e.g. the valid values")


class Health(BaseModel):
    """Liveness of the API process."""

    status: str = Field(description="'ok' while the process serves requests")
    version: str = Field(description="Version of the mesh-lakehouse package")


class ApiError(Exception):
    """An error a route raises on purpose; it becomes an ErrorBody with its status code."""

    def __init__(
        self,
        status_code: int,
        error_code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code
        self.message = message
        self.details = details
        self.headers = headers


def error_response(
    status_code: int, error_code: str, message: str, details: Any = None
) -> JSONResponse:
    """A JSON response in the shared error shape."""
    body = ErrorBody(error_code=error_code, message=message, details=jsonable_encoder(details))
    return JSONResponse(status_code=status_code, content=body.model_dump())


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting the shared error body for these codes."""
    return {code: {"model": ErrorBody} for code in status_codes}


async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    response = error_response(exc.status_code, exc.error_code, exc.message, exc.details)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [
        {
            "field": ".".join(str(part) for part in error["loc"]),
            "problem": error["msg"],
            "input": error.get("input"),
        }
        for error in exc.errors()
    ]
    summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
    return error_response(422, "invalid_request", f"invalid request: {summary}", problems)


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    response = error_response(exc.status_code, code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected_error(_: Request, __: Exception) -> JSONResponse:
    # The traceback goes to the server log (Starlette re-raises after this), never to clients.
    return error_response(
        500,
        "internal_error",
        "the server failed to answer this request; the error is in the server log",
    )


health_router = APIRouter(tags=["platform"])


@health_router.get("/health", response_model=Health, summary="Liveness check")
def health() -> Health:
    """Report that the API process is up, with the package version."""
    return Health(status="ok", version=__version__)


@health_router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(request: Request) -> Response:
    """Requests by endpoint and status, latency histograms and data product freshness."""
    body = generate_latest(request.app.state.metrics.registry)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)


# --- access control ----------------------------------------------------------------------------

API_KEY = APIKeyHeader(
    name="X-API-Key",
    scheme_name="ApiKeyAuth",
    auto_error=False,
    description="Service account API key; issue one with `mesh keys create ACCOUNT`",
)


class RateLimiter:
    """At most `per_minute` requests per API key in any sliding 60-second window."""

    WINDOW = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: dict[str, deque[float]] = {}

    def retry_after(self, key_id: str, per_minute: int) -> float | None:
        """Count one request for the key; seconds to wait when over the limit, else None."""
        now = time.monotonic()
        with self._lock:
            sent = self._sent.setdefault(key_id, deque())
            while sent and sent[0] <= now - self.WINDOW:
                sent.popleft()
            if len(sent) >= per_minute:
                return sent[0] + self.WINDOW - now
            sent.append(now)
            return None


@dataclass(frozen=True)
class ServedProduct:
    """The product a request reads, pinned to one Delta version for the whole request."""

    name: str
    account: str
    path: Path | None = None
    version: int | None = None
    committed_at: datetime | None = None

    def scan(self) -> pl.LazyFrame:
        """The product's gold table at the pinned version."""
        if self.path is None:
            raise ValueError(f"{self.name} is not served from a Delta table")
        return storage.scan(self.path, self.version)


def _account(key: str | None) -> tuple[access.AccessPolicy, access.Account]:
    hint = "issue one with `mesh keys create ACCOUNT` (accounts: `mesh keys list`)"
    if not key:
        raise ApiError(
            401, "missing_api_key", f"send your service account key in the X-API-Key header; {hint}"
        )
    try:
        policy = access.current_policy()
        name = access.account_for_key(key)
        if name is None:
            raise ApiError(401, "invalid_api_key", f"the X-API-Key is not a valid key; {hint}")
        return policy, policy.account(name)
    except access.AccessError as exc:
        raise ApiError(
            503, "access_policy_unavailable", f"access control cannot be checked: {exc}"
        ) from None


def _authorize(request: Request, key: str | None, product: str) -> access.Account:
    policy, account = _account(key)
    wait = request.app.state.rate_limiter.retry_after(
        access.digest(key), account.rate_limit_per_minute
    )
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise ApiError(
            429,
            "rate_limited",
            f"account {account.name} is limited to {account.rate_limit_per_minute} requests per "
            f"minute per key; retry in {seconds} s",
            {"limit_per_minute": account.rate_limit_per_minute, "retry_after_seconds": seconds},
            headers={"Retry-After": str(seconds)},
        )
    if not policy.allows(account, product):
        if product in policy.restricted:
            message = f"{product} is restricted to the {product.split('.')[0]} domain's accounts"
            raise ApiError(403, "restricted_product", message, {"product": product})
        owner = policy.owner_of(product, load_registry())
        raise ApiError(
            403,
            "missing_grant",
            f"account {account.name} has no grant on {product}; ask {owner} to approve a grant "
            f"`{{account: {account.name}, product: {product}}}` in domains/access.yml",
            {"account": account.name, "product": product, "approver": owner},
        )
    request.state.account = account.name
    return account


def product_access(product: str) -> Callable[..., Any]:
    """Dependency for a route serving the gold data product `product` ('domain.product')."""
    domain, table = product.split(".")

    async def dependency(
        request: Request,
        response: Response,
        key: Annotated[str | None, Security(API_KEY)] = None,
        require_fresh: Annotated[
            bool,
            Query(description="Answer 503 instead of data older than the domain's freshness SLO"),
        ] = False,
    ) -> ServedProduct:
        account = _authorize(request, key, product)
        path = get_settings().table_path(domain, "gold", table)
        commit = storage.latest_commit(path)
        if commit is None:
            raise ApiError(
                503,
                "product_unavailable",
                f"the {product} data product has not been built yet; run `mesh build`",
                {"product": product},
            )
        version, committed_at = commit
        if require_fresh:
            slo = load_registry()[domain].slos.freshness
            age = datetime.now(UTC) - committed_at
            if age > slo:
                raise ApiError(
                    503,
                    "stale_product",
                    f"{product} was last published {int(age.total_seconds())} s ago, beyond its "
                    f"freshness SLO of {int(slo.total_seconds())} s; retry later or drop "
                    "require_fresh to read it anyway",
                    {"product": product, "age_seconds": age.total_seconds(), "version": version},
                )
        response.headers["X-Data-Version"] = str(version)
        return ServedProduct(product, account.name, path, version, committed_at)

    dependency.product = product  # type: ignore[attr-defined]  # read by tag_products
    return dependency


def platform_access(product: str) -> Callable[..., Any]:
    """Dependency for a route serving a platform product (e.g. 'ml.churn_predict')."""

    async def dependency(
        request: Request, key: Annotated[str | None, Security(API_KEY)] = None
    ) -> ServedProduct:
        account = _authorize(request, key, product)
        return ServedProduct(product, account.name)

    dependency.product = product  # type: ignore[attr-defined]  # read by tag_products
    return dependency


def _products(dependant: Any) -> list[str]:
    found = [getattr(dependant.call, "product", None)]
    for sub in dependant.dependencies:
        found += _products(sub)
    return [p for p in found if p]


def tag_products(router: APIRouter) -> None:
    """Mark every operation of `router` in the OpenAPI document with its product (`x-product`)."""
    for route in router.routes:
        if isinstance(route, APIRoute) and (products := _products(route.dependant)):
            route.openapi_extra = {**(route.openapi_extra or {}), "x-product": products[0]}


def install(app: FastAPI) -> None:
    """Add the shared error handlers, access control state, /health and /metrics to an app."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.state.rate_limiter = RateLimiter()
    app.state.metrics = Metrics()
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.include_router(health_router)
