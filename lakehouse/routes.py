"""Pieces shared by the data product routes: paging, date windows, regions, schema drift.

A list endpoint takes `paging: PagingParams` and answers a subclass of `Page[Item]`
(`{items, total, limit, offset, next_offset}`); `paginate` reads one page and the total of a
lazy scan together, in one `collect_all`. Ordering is always by a unique key, so consecutive
pages cover every row exactly once. Invalid values answer in the shared error body: `limit` or
`offset` out of range is 422 `invalid_request`, a window whose start is after its end 400
`invalid_date_range`, one too long 400 `date_range_too_long`, an unknown region 400
`unknown_region`. Routers built with `route_class=ProductRoute` answer 503
`product_out_of_contract`, not 500, when a gold table lacks a column its contract promises (a
table published by an older pipeline).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar, get_args

import polars as pl
from fastapi import Depends, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from lakehouse import storage
from lakehouse.api import ApiError, ServedProduct
from lakehouse.reference import REGIONS

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 10**12  # beyond any table, and an offset polars can slice with (i64)
MAX_WINDOW_DAYS = 366
MAX_INDEXED_ROWS = 20_000_000  # ~2 GiB at most for an in-memory lookup copy (rows_with)
ALL_REGIONS = "ALL"


@dataclass(frozen=True)
class Paging:
    """Which slice of an ordered result a request asks for."""

    limit: int
    offset: int


def paging(
    limit: Annotated[
        int,
        Query(ge=1, le=MAX_LIMIT, description=f"Items per page, 1 to {MAX_LIMIT}", examples=[100]),
    ] = DEFAULT_LIMIT,
    offset: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_OFFSET,
            description="Items to skip: the previous page's next_offset",
            examples=[0],
        ),
    ] = 0,
) -> Paging:
    """The `limit` and `offset` query parameters of a paginated endpoint."""
    return Paging(limit, offset)


PagingParams = Annotated[Paging, Depends(paging)]


def example_of(model: type[BaseModel]) -> dict[str, Any]:
    """An example instance of `model` as JSON, from the first example of each field."""
    return {name: field.examples[0] for name, field in model.model_fields.items() if field.examples}


def _item_examples(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    (item,) = get_args(cls.model_fields["items"].annotation) or (None,)
    if isinstance(item, type) and issubclass(item, BaseModel):
        schema["properties"]["items"]["examples"] = [[example_of(item)]]


Item = TypeVar("Item", bound=BaseModel)


class Page(BaseModel, Generic[Item]):
    """One page of an ordered result."""

    model_config = ConfigDict(json_schema_extra=_item_examples)

    items: list[Item] = Field(description="The rows of this page, in the endpoint's order")
    total: int = Field(description="Rows matching the request across all pages", examples=[250])
    limit: int = Field(description="The page size asked for", examples=[100])
    offset: int = Field(description="Rows skipped before this page", examples=[0])
    next_offset: int | None = Field(
        description="The offset of the next page; null on the last page", examples=[100]
    )


def paginate(
    lf: pl.LazyFrame,
    order_by: Sequence[str],
    page: Paging,
    *,
    descending: bool | Sequence[bool] = False,
) -> tuple[pl.DataFrame, int]:
    """One page of `lf` ordered by `order_by` (a unique key), and the number of rows in all."""
    rows = lf.sort(list(order_by), descending=descending).slice(page.offset, page.limit)
    counted = lf.select(pl.len())
    frame, total = pl.collect_all([rows, counted])
    return frame, int(total.item())


def page_fields(rows: Sequence[Any], total: int, page: Paging) -> dict[str, Any]:
    """The keyword arguments of a `Page` holding `rows` out of `total`."""
    end = page.offset + len(rows)
    return {
        "items": list(rows),
        "total": total,
        "limit": page.limit,
        "offset": page.offset,
        "next_offset": end if end < total else None,
    }


def check_window(
    start: dt.date | None, end: dt.date | None, max_days: int | None = MAX_WINDOW_DAYS
) -> None:
    """Refuse a date window whose start is after its end or that spans more than `max_days`."""
    if start is None or end is None:
        return
    if start > end:
        raise ApiError(
            400,
            "invalid_date_range",
            f"start_date {start} is after end_date {end}; swap them or pick a later end_date",
            {"start_date": start, "end_date": end},
        )
    days = (end - start).days + 1
    if max_days is not None and days > max_days:
        raise ApiError(
            400,
            "date_range_too_long",
            f"the window from {start} to {end} spans {days} days; ask for at most {max_days} days "
            "per request and split longer periods",
            {"start_date": start, "end_date": end, "days": days, "max_days": max_days},
        )


def region_filter(
    region: Annotated[
        str,
        Query(
            description=f"{', '.join(REGIONS)}, or {ALL_REGIONS} (the default) for every region",
            json_schema_extra={"enum": [*REGIONS, ALL_REGIONS]},
            examples=["LATAM"],
        ),
    ] = ALL_REGIONS,
) -> str | None:
    """The `region` query parameter: one region, or None for all of them."""
    if region == ALL_REGIONS:
        return None
    if region not in REGIONS:
        raise ApiError(
            400,
            "unknown_region",
            f"unknown region {region!r}; use one of {', '.join(REGIONS)} or omit region",
            {"region": region, "valid_regions": list(REGIONS)},
        )
    return region


RegionFilter = Annotated[str | None, Depends(region_filter)]


def bounds(lf: pl.LazyFrame, column: str) -> tuple[Any, Any]:
    """Smallest and largest value of `column` (None, None on an empty table), for error hints."""
    extremes = lf.select(pl.col(column).min().alias("low"), pl.col(column).max().alias("high"))
    low, high = extremes.collect().row(0)
    return low, high


def span(low: Any, high: Any) -> str:
    """'from LOW to HIGH' for an error message, or a hint when the product holds no rows."""
    if low is None:
        return "nowhere yet: the product is empty; run `mesh build`"
    return f"from {low} to {high}"


class ProductRoute(APIRoute):
    """A data product route that answers 503 when its gold table has drifted from the contract."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (pl.exceptions.ColumnNotFoundError, pl.exceptions.SchemaError) as exc:
                domain = request.url.path.split("/")[1]
                problem = str(exc).splitlines()[0]
                raise ApiError(
                    503,
                    "product_out_of_contract",
                    f"the gold table behind this endpoint does not match its data contract "
                    f"({problem}); the {domain} domain must republish it, e.g. "
                    f"`mesh run --domain {domain} --full-refresh`",
                    {"domain": domain, "problem": problem},
                ) from None

        return guarded


@lru_cache(maxsize=8)
def _sorted_copy(path: str, version: int, key: str, columns: tuple[str, ...]) -> pl.DataFrame:
    return storage.scan(Path(path), version).select(key, *columns).sort(key).collect()


def rows_with(
    served: ServedProduct, key: str, value: Any, columns: Sequence[str]
) -> tuple[pl.DataFrame, tuple[Any, Any]]:
    """The rows of the pinned version whose `key` equals `value`, and the key's (min, max).

    A lookup by id would scan the whole Delta table per request (~10 ms at the small scale); a
    table of up to MAX_INDEXED_ROWS rows is instead copied once per Delta version into memory,
    sorted by `key`, and looked up by binary search. Larger tables are scanned.
    """
    assert served.path is not None and served.version is not None
    if storage.row_count(served.path, served.version) > MAX_INDEXED_ROWS:
        lf = served.scan()
        return lf.filter(pl.col(key) == value).select(key, *columns).collect(), bounds(lf, key)
    frame = _sorted_copy(str(served.path), served.version, key, tuple(columns))
    ids = frame[key]
    low = ids.search_sorted(value, "left")
    high = ids.search_sorted(value, "right")
    extremes = (ids[0], ids[-1]) if len(ids) else (None, None)
    return frame.slice(low, high - low), extremes
