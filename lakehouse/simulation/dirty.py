"""Source-system noise: a share of records is duplicated, nulled, negated, delayed, orphaned or
garbled, and every injection is logged so quality gates can be checked against it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

DIRTY_KINDS = (
    "duplicate",
    "null_required",
    "negative_amount",
    "late_arrival",
    "unknown_foreign_key",
    "malformed_value",
)
UNKNOWN_ID_OFFSET = 9_000_000_000  # ids at or above this never exist in the world


@dataclass(frozen=True)
class TableSpec:
    """How one raw table can be dirtied."""

    domain: str
    name: str
    key: str
    required: tuple[str, ...] = ()
    amount: str | None = None
    foreign_keys: tuple[str, ...] = ()
    malformed: tuple[str, str] | None = None  # (column, style)
    kinds: tuple[str, ...] = field(default=DIRTY_KINDS)

    def applicable(self) -> list[str]:
        """The dirty kinds this table supports."""
        ok = []
        for kind in self.kinds:
            if kind == "null_required" and not self.required:
                continue
            if kind == "negative_amount" and self.amount is None:
                continue
            if kind == "unknown_foreign_key" and not self.foreign_keys:
                continue
            if kind == "malformed_value" and self.malformed is None:
                continue
            ok.append(kind)
        return ok


def _garble(col: str, style: str) -> pl.Expr:
    value = pl.col(col)
    if style == "lower_padded":
        return pl.concat_str([pl.lit(" "), value.str.to_lowercase(), pl.lit(" ")])
    if style == "email_no_at":
        return value.str.replace("@", " at ")
    if style == "upper_bang":
        return value.str.to_uppercase() + pl.lit("!")
    raise ValueError(f"unknown malformed style {style!r}")


def inject(
    df: pl.DataFrame, spec: TableSpec, share: float, rng: np.random.Generator, release: np.ndarray
) -> pl.DataFrame:
    """Dirty about `share` of the rows. Adds `_release_day` (when the source delivers the row)
    and `_dirty` (the injected kind, null for clean rows; a duplicate's copy carries it)."""
    n = df.height
    release = np.asarray(release, dtype=np.int32).copy()
    kinds = spec.applicable()
    codes = np.full(n, -1, dtype=np.int8)
    if n and share > 0 and kinds:
        hit = rng.random(n) < share
        codes[hit] = rng.integers(0, len(kinds), size=int(hit.sum()))
    masks = {k: pl.Series(codes == i) for i, k in enumerate(kinds)}
    # one kind per row, so applying the kinds one after another never mixes them
    if "null_required" in masks:
        which = rng.integers(0, len(spec.required), size=n)
        for i, col in enumerate(spec.required):
            m = pl.Series(masks["null_required"].to_numpy() & (which == i))
            df = df.with_columns(pl.when(m).then(None).otherwise(pl.col(col)).alias(col))
    if "negative_amount" in masks and spec.amount:
        a = spec.amount
        m = masks["negative_amount"]
        df = df.with_columns(pl.when(m).then(-pl.col(a).abs()).otherwise(pl.col(a)).alias(a))
    if "unknown_foreign_key" in masks:
        fk = spec.foreign_keys[0]
        m = masks["unknown_foreign_key"]
        df = df.with_columns(
            pl.when(m).then(pl.col(fk) + UNKNOWN_ID_OFFSET).otherwise(pl.col(fk)).alias(fk)
        )
    if "malformed_value" in masks and spec.malformed:
        col, style = spec.malformed
        m = masks["malformed_value"]
        df = df.with_columns(pl.when(m).then(_garble(col, style)).otherwise(pl.col(col)).alias(col))
    if "late_arrival" in masks:
        late = masks["late_arrival"].to_numpy()
        release[late] += rng.integers(2, 8, size=int(late.sum())).astype(np.int32)
    dirty = pl.Series(codes).replace_strict(
        dict(enumerate(kinds)), default=None, return_dtype=pl.String
    )
    is_dup = masks["duplicate"] if "duplicate" in masks else pl.Series(np.zeros(n, bool))
    df = df.with_columns(
        _release_day=pl.Series(release, dtype=pl.Int32),
        _dirty=pl.when(is_dup).then(None).otherwise(dirty),
    )
    if is_dup.any():
        dup = df.filter(is_dup)
        shift = rng.integers(0, 3, size=dup.height).astype(np.int32)
        dup = dup.with_columns(
            pl.col("_release_day") + pl.Series(shift), _dirty=pl.lit("duplicate")
        )
        df = pl.concat([df, dup])
    return df


def injection_log(df: pl.DataFrame, spec: TableSpec, batch_id: str) -> pl.DataFrame:
    """The injected records among delivered rows: domain, table, record key, kind, batch."""
    hits = df.filter(pl.col("_dirty").is_not_null())
    return pl.DataFrame(
        {
            "domain": pl.Series([spec.domain] * hits.height, dtype=pl.String),
            "table": pl.Series([spec.name] * hits.height, dtype=pl.String),
            "record_key": hits[spec.key].cast(pl.String),
            "kind": hits["_dirty"],
            "batch_id": pl.Series([batch_id] * hits.height, dtype=pl.String),
        }
    )
