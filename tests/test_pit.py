"""Point-in-time training sets: against a brute-force spec, against Feast, and on the real repo."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from lakehouse import features, storage
from lakehouse.config import reset_settings
from lakehouse.pit import ViewSpec, point_in_time_join, service_views, training_set

BASE = datetime(2024, 1, 1, tzinfo=UTC)
TS = pl.Datetime("us", "UTC")
# Minutes as the time unit, from a small range: equal timestamps, rows exactly at the TTL
# boundary and entity rows before any feature row all come up often.
TTLS = [None, timedelta(0), *(timedelta(minutes=m) for m in (1, 2, 3, 5)), timedelta(days=1)]


def minute(m: int | None) -> datetime | None:
    return None if m is None else BASE + timedelta(minutes=m)


def write_in_commits(
    rows: list[dict[str, Any]], schema: dict[str, Any], path: Path, parts: int
) -> None:
    """Rows as a Delta table written in `parts` appends, so a scan spans several files."""
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    step = max(1, -(-frame.height // parts))
    storage.write(frame.head(0), path, mode="overwrite")
    for start in range(0, frame.height, step):
        storage.write(frame.slice(start, step), path)


def brute_force(
    entities: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    view: ViewSpec,
) -> list[set[tuple[Any, ...]]]:
    """For each entity row, every feature tuple Feast may return (more than one on full ties)."""
    column = view.column
    out = []
    for e in entities:
        t = e["event_timestamp"]
        candidates = [
            r
            for r in rows
            if t is not None
            and r[column(view.timestamp_field)] is not None
            and all(e[ec] is not None and r[column(k)] == e[ec] for k, ec in view.join_keys.items())
            and r[column(view.timestamp_field)] <= t
            and (not view.ttl or r[column(view.timestamp_field)] >= t - view.ttl)
        ]

        def rank(r: dict[str, Any]) -> tuple[Any, ...]:
            created_column = view.created_timestamp_column
            created = r[column(created_column)] if created_column else None
            # Null created timestamps lose to any other (DESC NULLS LAST in Feast's SQL).
            return (r[column(view.timestamp_field)], created is not None, created or BASE)

        best = max(map(rank, candidates), default=None)
        out.append(
            {tuple(r[column(f)] for f in view.features) for r in candidates if rank(r) == best}
            or {(None,) * len(view.features)}
        )
    return out


key = st.integers(0, 2)
ts = st.integers(0, 12)


@st.composite
def rows_with_duplicates(
    draw: st.DrawFn, row: st.SearchStrategy, restated: st.SearchStrategy | None = None
) -> list[dict[str, Any]]:
    """Rows, some repeated verbatim, some restated (same keys and time, new values), shuffled."""
    rows = draw(st.lists(row, max_size=25))
    if rows:
        rows += draw(st.lists(st.sampled_from(rows), max_size=4))
    if rows and restated is not None:
        rows += [{**r, **draw(restated)} for r in draw(st.lists(st.sampled_from(rows), max_size=6))]
    return draw(st.permutations(rows))


# View A: a two-column key (two entities), created timestamps that arrive late and out of order.
A_SCHEMA = {"a": pl.Int64, "b": pl.Int64, "event_timestamp": TS, "created_timestamp": TS,
            "x": pl.Int64, "s": pl.String}  # fmt: skip
a_rows = st.builds(
    lambda a, b, t, late, x: {
        "a": a,
        "b": b,
        "event_timestamp": minute(t),
        "created_timestamp": None if t is None or late is None else minute(t + late),
        "x": x,
        "s": None if x is None else f"s{x}",
    },
    key,
    key,
    ts | st.none(),
    st.integers(0, 4) | st.none(),
    st.integers(-3, 3) | st.none(),
)
# A late correction of a row: the same keys and event time, created at another time.
restated = st.builds(
    lambda created, x: {"created_timestamp": minute(created), "x": x, "s": f"r{x}"},
    st.integers(0, 16) | st.none(),
    st.integers(-3, 3),
)
# View B: key a only, another timestamp column name, no created timestamp, a renamed column.
B_SCHEMA = {"a": pl.Int64, "ts": TS, "raw_y": pl.Float64}
b_rows = st.builds(
    lambda a, t, y: {"a": a, "ts": minute(t), "raw_y": y},
    key,
    ts,
    st.sampled_from([0.5, 1.5, -2.0]) | st.none(),
)
entity_rows = st.builds(
    lambda a, b, t, label: {"a": a, "b": b, "event_timestamp": minute(t), "label": label},
    st.integers(0, 3) | st.none(),
    st.integers(0, 3),
    st.integers(-2, 15) | st.none(),
    st.integers(0, 1),
)


@st.composite
def probes(draw: st.DrawFn, rows: list[dict[str, Any]], ts_column: str) -> list[dict[str, Any]]:
    """Entity rows at a feature row's keys, at its time or a little (or a TTL) after it."""
    out = []
    for row in draw(st.lists(st.sampled_from(rows), max_size=12)) if rows else []:
        after = draw(st.sampled_from([0, 0, 1, 2, 3, 5, 60 * 24]))
        at = None if row[ts_column] is None else row[ts_column] + timedelta(minutes=after)
        b = row["b"] if "b" in row else draw(key)
        out.append({"a": row["a"], "b": b, "event_timestamp": at, "label": draw(st.integers(0, 1))})
    return out


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[dict[str, Any]], ...]:
    """Rows of views A and B, and entity rows: random ones and probes of both views' rows."""
    rows_a = draw(rows_with_duplicates(a_rows, restated))
    rows_b = draw(rows_with_duplicates(b_rows))
    entities = draw(st.lists(entity_rows, max_size=8))
    entities += draw(probes(rows_a, "event_timestamp")) + draw(probes(rows_b, "ts"))
    if entities:
        entities += draw(st.lists(st.sampled_from(entities), max_size=3))
    return rows_a, rows_b, draw(st.permutations(entities))


def off_grid(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every odd minute a microsecond later: equal times stay equal, but they no longer lie on a
    grid, so the packed join ranks them instead of dividing by the grid's step."""

    def shift(value: Any) -> Any:
        odd = isinstance(value, datetime) and (value - BASE) // timedelta(minutes=1) % 2
        return value + timedelta(microseconds=1) if odd else value

    return [{k: shift(v) for k, v in row.items()} for row in rows]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    scenario=scenarios(),
    ttl_a=st.sampled_from(TTLS),
    ttl_b=st.sampled_from(TTLS),
    parts=st.integers(1, 3),
    naive=st.booleans(),
    full_feature_names=st.booleans(),
    method=st.sampled_from(["auto", "asof"]),
    on_grid=st.booleans(),
)
def test_matches_the_brute_force_spec(
    scenario: tuple[list[dict[str, Any]], ...],
    ttl_a: timedelta | None,
    ttl_b: timedelta | None,
    parts: int,
    naive: bool,
    full_feature_names: bool,
    method: Literal["auto", "asof"],
    on_grid: bool,
) -> None:
    rows_a, rows_b, entities = scenario
    if not on_grid:
        rows_a, rows_b, entities = off_grid(rows_a), off_grid(rows_b), off_grid(entities)
    with tempfile.TemporaryDirectory() as tmp:
        view_a = ViewSpec("va", Path(tmp, "a"), {"a": "a", "b": "b"}, ["x", "s"], ttl=ttl_a)
        view_b = ViewSpec(
            "vb",
            Path(tmp, "b"),
            {"a": "a"},
            ["y"],
            timestamp_field="ts",
            created_timestamp_column=None,
            ttl=ttl_b,
            field_mapping={"raw_y": "y"},
        )
        write_in_commits(rows_a, A_SCHEMA, view_a.path, parts)
        write_in_commits(rows_b, B_SCHEMA, view_b.path, parts)
        entity_schema = {"a": pl.Int64, "b": pl.Int64, "event_timestamp": TS, "label": pl.Int8}
        entity_df = pl.DataFrame(entities, schema=entity_schema, orient="row")
        if naive:
            entity_df = entity_df.with_columns(pl.col("event_timestamp").dt.replace_time_zone(None))
        got = point_in_time_join(
            entity_df, [view_a, view_b], full_feature_names=full_feature_names, method=method
        )

    names = ["x", "s", "y"]
    if full_feature_names:
        names = ["va__x", "va__s", "vb__y"]
    assert got.columns == ["a", "b", "event_timestamp", "label", *names]
    assert got.select("a", "b", "event_timestamp", "label").equals(
        pl.DataFrame(entities, schema=entity_schema, orient="row")
    )
    for view, rows, cols in ((view_a, rows_a, names[:2]), (view_b, rows_b, names[2:])):
        expected = brute_force(entities, rows, view)
        mismatches = [
            (i, entities[i], row, want)
            for i, (row, want) in enumerate(zip(got.select(cols).rows(), expected, strict=True))
            if row not in want
        ]
        assert not mismatches, mismatches[:5]


def one_view(path: Path, ttl: timedelta | None = None) -> ViewSpec:
    return ViewSpec("va", path, {"a": "a", "b": "b"}, ["x"], ttl=ttl)


def test_naive_timestamps_are_utc_and_pandas_input_gives_the_same_rows(tmp_path: Path) -> None:
    rows = [{"a": 1, "b": 1, "event_timestamp": minute(0), "created_timestamp": minute(0),
             "x": 7, "s": "s7"}]  # fmt: skip
    write_in_commits(rows, A_SCHEMA, tmp_path / "a", 1)
    aware = pl.DataFrame({"a": [1, 1], "b": [1, 1], "event_timestamp": [minute(-1), minute(2)]})
    naive = aware.with_columns(pl.col("event_timestamp").dt.replace_time_zone(None))
    view = one_view(tmp_path / "a", ttl=timedelta(minutes=2))
    want = point_in_time_join(aware, [view])
    assert want["x"].to_list() == [None, 7]  # exactly at the TTL boundary still counts
    assert_frame_equal(point_in_time_join(naive, [view]), want)
    assert_frame_equal(point_in_time_join(naive.to_pandas(), [view]), want)
    assert dict(want.schema)["event_timestamp"] == TS


def test_entity_df_without_a_key_or_timestamp_says_what_to_add(tmp_path: Path) -> None:
    view = one_view(tmp_path / "a")
    with pytest.raises(ValueError, match="no column 'b', a join key of feature view 'va'"):
        point_in_time_join(pl.DataFrame({"a": [1], "event_timestamp": [BASE]}), [view])
    with pytest.raises(ValueError, match="needs an 'event_timestamp' column"):
        point_in_time_join(pl.DataFrame({"a": [1], "b": [1], "ts": [BASE]}), [view])
    with pytest.raises(TypeError, match=r"str.to_datetime"):
        point_in_time_join(pl.DataFrame({"a": [1], "b": [1], "event_timestamp": ["x"]}), [view])


def test_a_missing_feature_table_names_the_view_and_the_build(tmp_path: Path) -> None:
    entity_df = pl.DataFrame({"a": [1], "b": [1], "event_timestamp": [BASE]})
    with pytest.raises(storage.TableNotFoundError, match=r"'va'.*mesh build"):
        point_in_time_join(entity_df, [one_view(tmp_path / "nothing")])


def test_clashing_feature_names_need_full_names(tmp_path: Path) -> None:
    write_in_commits([], A_SCHEMA, tmp_path / "a", 1)
    view = one_view(tmp_path / "a")
    other = ViewSpec("vb", tmp_path / "a", {"a": "a"}, ["x"])
    entity_df = pl.DataFrame({"a": [1], "b": [1], "event_timestamp": [BASE]})
    with pytest.raises(ValueError, match="full_feature_names=True"):
        point_in_time_join(entity_df, [view, other])
    both = point_in_time_join(entity_df, [view, other], full_feature_names=True)
    assert both.columns == ["a", "b", "event_timestamp", "va__x", "vb__x"]


def test_text_and_very_wide_keys_join_through_duckdb_with_the_same_rows(tmp_path: Path) -> None:
    """Keys that cannot be packed into an int64 (text; integers spread over 2**61) fall back to
    DuckDB's ASOF join inside method="auto" and give the rows packed keys give."""
    # a, b, event minute, created minute; the last two tie on keys and event time: x=3, created
    # later, wins
    keys_and_minutes = [(1, 1, 0, 0), (1, 1, 4, 4), (1, 2, 4, 4), (2, 1, 1, 3), (2, 1, 1, 1)]
    rows = [
        dict(zip(A_SCHEMA, (a, b, minute(t), minute(c), x, f"s{x}"), strict=True))
        for x, (a, b, t, c) in enumerate(keys_and_minutes)
    ]
    entities = pl.DataFrame(
        {
            "a": [1, 1, 1, 2, 3, None],
            "b": [1, 1, 2, 1, 1, 1],
            "event_timestamp": [minute(t) for t in (3, 4, 8, 1, 5, 5)],
        },
        schema={"a": pl.Int64, "b": pl.Int64, "event_timestamp": TS},
    )
    write_in_commits(rows, A_SCHEMA, tmp_path / "int", 2)
    packed = point_in_time_join(entities, [one_view(tmp_path / "int", ttl=timedelta(minutes=4))])
    assert packed["x"].to_list() == [0, 1, 2, 3, None, None]
    for name, key in (("text", pl.col("a").cast(pl.String)), ("wide", pl.col("a") * 2**61)):
        storage.write(storage.read(tmp_path / "int").with_columns(key), tmp_path / name)
        view = one_view(tmp_path / name, ttl=timedelta(minutes=4))
        got = point_in_time_join(entities.with_columns(key), [view])
        assert_frame_equal(got.drop("a"), packed.drop("a"))
    with pytest.raises(ValueError, match="method must be 'auto' or 'asof'"):
        point_in_time_join(entities, [one_view(tmp_path / "int")], method="fast")  # type: ignore[arg-type]


def assert_same_as_feast(ours: pl.DataFrame, feast_df: pd.DataFrame) -> None:
    """Equal after sorting, with Feast's to_df() dtypes normalised: it turns int columns that hold
    nulls into float64 (compared as Float64 on both sides) and all-null columns into objects."""
    theirs = pl.from_pandas(feast_df)
    assert theirs.columns == ours.columns
    as_float = {c: pl.Float64 for c, t in ours.schema.items()
                if t.is_integer() and theirs.schema[c] == pl.Float64}  # fmt: skip
    untyped = {c: ours.schema[c] for c, t in theirs.schema.items() if t == pl.Null}
    ours, theirs = ours.cast(as_float), theirs.cast(untyped)  # type: ignore[arg-type]
    assert_frame_equal(
        ours.sort(ours.columns, nulls_last=True), theirs.sort(ours.columns, nulls_last=True)
    )


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A Feast repo of two Delta-backed views: customer (TTL 3 min, created timestamps) and
    customer x product (TTL 1 day, its own timestamp column, no created timestamp)."""
    from feast import (
        Entity,
        FeatureService,
        FeatureStore,
        FeatureView,
        Field,
        FileSource,
        RepoConfig,
        ValueType,
    )
    from feast.data_format import DeltaFormat
    from feast.infra.offline_stores.duckdb import DuckDBOfflineStoreConfig
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
    from feast.types import Float64, Int64, String

    from lakehouse.duck import ensure_delta_extension

    ensure_delta_extension()
    root = tmp_path_factory.mktemp("feast_repo")
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    product = Entity(name="product", join_keys=["product_id"], value_type=ValueType.INT64)

    def source(name: str, timestamp_field: str, created: str = "") -> Any:
        return FileSource(
            name=f"{name}_source",
            path=str(root / name),
            file_format=DeltaFormat(),
            timestamp_field=timestamp_field,
            created_timestamp_column=created,
        )

    va = FeatureView(
        name="va",
        entities=[customer],
        ttl=timedelta(minutes=3),
        schema=[
            Field(name="customer_id", dtype=Int64),
            Field(name="x", dtype=Int64),
            Field(name="s", dtype=String),
        ],
        source=source("va", "event_timestamp", "created_timestamp"),
    )
    vb = FeatureView(
        name="vb",
        entities=[customer, product],
        ttl=timedelta(days=1),
        schema=[
            Field(name="customer_id", dtype=Int64),
            Field(name="product_id", dtype=Int64),
            Field(name="score", dtype=Float64),
        ],
        source=source("vb", "ts"),
    )
    services = [
        FeatureService(name="svc", features=[va[["x"]], vb]),
        FeatureService(name="svc_all", features=[vb, va]),
    ]
    store = FeatureStore(
        config=RepoConfig(
            project="pit",
            provider="local",
            registry=str(root / "registry.db"),
            online_store=SqliteOnlineStoreConfig(path=str(root / "online.db")),
            offline_store=DuckDBOfflineStoreConfig(),
            entity_key_serialization_version=3,
            repo_path=root,
        )
    )
    store.apply([customer, product, va, vb, *services])
    return store


VA_SCHEMA = {"customer_id": pl.Int64, "event_timestamp": TS, "created_timestamp": TS,
             "x": pl.Int64, "s": pl.String}  # fmt: skip
VB_SCHEMA = {"customer_id": pl.Int64, "product_id": pl.Int64, "ts": TS, "score": pl.Float64}


def write_tiny_tables(store: Any, va: list[dict[str, Any]], vb: list[dict[str, Any]]) -> None:
    """Write both tables; rows tied on every ordering column get equal values, because on such a
    tie Feast returns an arbitrary one of them."""
    root = Path(store.config.repo_path)
    va_df = pl.DataFrame(va, schema=VA_SCHEMA, orient="row")
    tie = ["customer_id", "event_timestamp", "created_timestamp"]
    va_df = va_df.with_columns(pl.col("x", "s").first().over(tie))
    vb_df = pl.DataFrame(vb, schema=VB_SCHEMA, orient="row")
    vb_df = vb_df.with_columns(pl.col("score").first().over("customer_id", "product_id", "ts"))
    storage.write(va_df, root / "va", mode="overwrite")
    storage.write(vb_df, root / "vb", mode="overwrite")


def compare_with_feast(store: Any, entity_df: pd.DataFrame, service: str, full: bool) -> None:
    theirs = store.get_historical_features(
        entity_df=entity_df,
        features=store.get_feature_service(service),
        full_feature_names=full,
    ).to_df()
    ours = point_in_time_join(entity_df, service_views(store, service), full_feature_names=full)
    assert_same_as_feast(ours, theirs)


def test_same_as_feast_on_a_tiny_repo(tiny_store: Any) -> None:
    m = minute
    va = [  # customer, event time, created time, x, s
        (1, m(0), m(0), 1, "a"),
        (1, m(5), m(9), 2, "b"),  # a late correction of the row below wins the tie
        (1, m(5), m(6), 3, "c"),
        (1, m(5), None, 4, "d"),  # no created timestamp: loses to any
        (2, m(1), None, 5, None),
        (2, m(1), m(0), 6, "f"),
        (2, m(1), m(0), 6, "f"),  # an exact duplicate
    ]
    vb = [(1, 7, m(0), 1.5), (1, 7, m(3), 2.5), (2, 7, m(2), None), (2, 8, m(-2000), 9.0)]
    write_tiny_tables(
        tiny_store,
        [dict(zip(VA_SCHEMA, r, strict=True)) for r in va],
        [dict(zip(VB_SCHEMA, r, strict=True)) for r in vb],
    )
    entity_df = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2, 2, 3, 1, 2, 2],
            "product_id": [7, 7, 7, 7, 7, 7, 8, 8, 8],
            "event_timestamp": [m(t) for t in (4, 5, 8, 4, 5, 3, -1, -560, -559)],
            "label": [1, 2, 3, 4, 4, 5, 6, 7, 8],
        }
    )
    ours = point_in_time_join(entity_df, service_views(tiny_store, "svc"))
    assert ours.columns == ["customer_id", "product_id", "event_timestamp", "label", "x", "score"]
    # Customer 1 at 4: the row at 0 is past the 3-minute TTL; at 5 and 8: the late correction.
    # Customer 2 at 4: exactly 3 minutes old, and a created timestamp beats a null one; at 5:
    # expired. The vb row at -2000 is exactly a day (its TTL) before -560, and expired at -559.
    assert ours["x"].to_list() == [None, 2, 2, 6, None, None, None, None, None]
    assert ours["score"].to_list() == [2.5, 2.5, 2.5, None, None, None, None, 9.0, None]
    for service, full in (("svc", False), ("svc_all", False), ("svc_all", True)):
        compare_with_feast(tiny_store, entity_df, service, full)
    naive = entity_df.assign(event_timestamp=entity_df["event_timestamp"].dt.tz_localize(None))
    compare_with_feast(tiny_store, naive, "svc_all", False)


va_rows = st.builds(
    lambda c, t, late, x: dict(
        zip(
            VA_SCHEMA,
            (c, minute(t), minute(None if late is None else t + late), x, f"s{x}"),
            strict=True,
        )
    ),
    key,
    ts,
    st.integers(0, 4) | st.none(),
    st.integers(-3, 3),
)
vb_rows = st.builds(
    lambda c, p, t, score: dict(zip(VB_SCHEMA, (c, p, minute(t), score), strict=True)),
    key,
    st.integers(0, 1),
    ts,
    st.sampled_from([0.5, 1.5]) | st.none(),
)


@st.composite
def feast_scenarios(draw: st.DrawFn) -> tuple[list[Any], list[Any], pd.DataFrame]:
    """Rows of both views, and entity rows: random ones and ones at or after the views' rows
    (0 to 4 minutes, or a day: on and around both TTLs)."""
    va = draw(rows_with_duplicates(va_rows, restated))
    vb = draw(rows_with_duplicates(vb_rows))
    customers, products = st.integers(0, 3), st.integers(0, 1)
    entities = draw(st.lists(st.tuples(customers, products, st.integers(-2, 15).map(minute))))
    for row in draw(st.lists(st.sampled_from(va + vb), max_size=12)) if va or vb else []:
        at = row.get("event_timestamp") or row["ts"]
        after = timedelta(minutes=draw(st.sampled_from([0, 1, 3, 4, 60 * 24])))
        entities.append((row["customer_id"], row.get("product_id", draw(products)), at + after))
    entity_df = pd.DataFrame(
        entities or [(0, 0, BASE)], columns=["customer_id", "product_id", "event_timestamp"]
    )
    return va, vb, entity_df.assign(label=range(len(entity_df)))


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(scenario=feast_scenarios(), naive=st.booleans(), full=st.booleans())
def test_same_as_feast_on_random_tables(
    tiny_store: Any,
    scenario: tuple[list[Any], list[Any], pd.DataFrame],
    naive: bool,
    full: bool,
) -> None:
    va, vb, entity_df = scenario
    write_tiny_tables(tiny_store, va, vb)
    if naive:
        entity_df["event_timestamp"] = entity_df["event_timestamp"].dt.tz_localize(None)
    compare_with_feast(tiny_store, entity_df, "svc_all" if full else "svc", full)


@pytest.fixture(scope="module")
def built_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tiny world run through the domain pipelines and feature jobs, registered in Feast."""
    from lakehouse import orchestration
    from lakehouse.simulation import generate

    root = tmp_path_factory.mktemp("mesh") / "data"
    old = os.environ.get("MESH_DATA_DIR")
    os.environ["MESH_DATA_DIR"] = str(root)
    reset_settings()
    try:
        generate("tiny")
        orchestration.run_pipelines()
        orchestration.run_features()
        features.apply()
    finally:
        if old is None:
            os.environ.pop("MESH_DATA_DIR", None)
        else:
            os.environ["MESH_DATA_DIR"] = old
        reset_settings()
    yield root


@pytest.fixture
def mesh(built_mesh: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MESH_DATA_DIR", str(built_mesh))
    reset_settings()
    yield built_mesh
    reset_settings()


def test_same_as_feast_for_every_service_of_the_real_repo(mesh: Path) -> None:
    from models.churn import build_labels

    # Weekly as-of times fall exactly on the snapshot times; the shifted copy falls between them.
    labels = build_labels(every="1w")
    shifted = labels.with_columns(pl.col("event_timestamp") + timedelta(days=3, hours=5))
    first = labels.row(0, named=True)
    odd = pl.DataFrame(
        {
            "customer_id": [first["customer_id"], -1],
            "event_timestamp": [datetime(2000, 1, 1, tzinfo=UTC), first["event_timestamp"]],
            "churned": [0, 1],
        },
        schema=labels.schema,
    )  # a row before any snapshot, a customer with no history
    labels = pl.concat([labels, shifted, odd, labels.head(3)])  # and duplicated rows
    store = features.feature_store()
    services = sorted(s.name for s in store.list_feature_services())
    assert "churn_v1" in services
    for service in services:
        ours = training_set(service, labels)
        assert ours.height == labels.height
        assert ours[service_views(store, service)[0].features[0]].null_count() < labels.height
        theirs = store.get_historical_features(
            entity_df=labels.to_pandas(), features=store.get_feature_service(service)
        ).to_df()
        assert_same_as_feast(ours, theirs)


def test_an_unknown_service_lists_the_known_ones(mesh: Path) -> None:
    entity_df = pl.DataFrame({"customer_id": [1], "event_timestamp": [BASE]})
    with pytest.raises(features.FeatureStoreError, match=r"'churn_v9'.*known: .*churn_v1"):
        training_set("churn_v9", entity_df)


def test_a_service_whose_table_is_not_built_says_to_build(data_dir: Path) -> None:
    features.apply()
    entity_df = pl.DataFrame({"customer_id": [1], "event_timestamp": [BASE]})
    with pytest.raises(storage.TableNotFoundError, match=r"'ventas_customer_fv'.*mesh build"):
        training_set("churn_v1", entity_df)
