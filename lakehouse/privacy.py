"""Deterministic masking of PII so masked columns still join across domains."""

from __future__ import annotations

import hashlib
import os

import polars as pl

DEFAULT_SALT = "mesh-local-salt"


def _salt() -> bytes:
    return os.environ.get("MESH_PII_SALT", DEFAULT_SALT).encode()


def token(value: str | None) -> str | None:
    """Salted SHA-256 token of one value (None stays None)."""
    if value is None:
        return None
    return hashlib.sha256(_salt() + value.strip().lower().encode()).hexdigest()[:32]


def mask(column: str) -> pl.Expr:
    """Expression replacing a PII column by its salted token, keeping the column name."""
    salt = _salt()

    def _hash(s: pl.Series) -> pl.Series:
        return pl.Series(
            [
                None
                if v is None
                else hashlib.sha256(salt + v.strip().lower().encode()).hexdigest()[:32]
                for v in s.to_list()
            ],
            dtype=pl.String,
        )

    return pl.col(column).map_batches(_hash, return_dtype=pl.String).alias(column)
