"""Shared FastAPI pieces every domain API uses: one JSON error shape and a health route.

Every error a client can see, whether raised by a domain (`ApiError`), by request validation or
by a bug, is answered as `{"error_code": ..., "message": ..., "details": ...}` so consumers
handle failures one way across the mesh. Unexpected errors never leak a traceback.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from lakehouse import __version__

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
        self, status_code: int, error_code: str, message: str, details: Any = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code
        self.message = message
        self.details = details


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
    return error_response(exc.status_code, exc.error_code, exc.message, exc.details)


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


def install(app: FastAPI) -> None:
    """Add the shared error handlers and the /health route to an app."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.include_router(health_router)
