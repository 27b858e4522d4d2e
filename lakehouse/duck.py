"""DuckDB connections that read Delta offline, with the extension shipped by duckdb-ext-delta."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import duckdb


class DeltaExtensionMissingError(RuntimeError):
    """The DuckDB delta extension is not installed as a package."""


def _platform() -> str:
    return duckdb.sql("PRAGMA platform").fetchone()[0]


def packaged_extension_dir() -> Path:
    """The extension directory inside the installed duckdb-ext-delta package."""
    spec = importlib.util.find_spec("duckdb_ext")
    if spec is None or not spec.submodule_search_locations:
        raise DeltaExtensionMissingError(
            "DuckDB's delta extension is not installed; run `make install` "
            "(or `pip install 'duckdb-ext-delta==1.4.4.*'`)"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "extensions"
    ext = root / f"v{duckdb.__version__}" / _platform() / "delta.duckdb_extension"
    if not ext.exists():
        raise DeltaExtensionMissingError(
            f"duckdb-ext-delta has no delta extension for DuckDB v{duckdb.__version__} on "
            f"{_platform()} (looked for {ext}); install the duckdb-ext-delta matching duckdb"
        )
    return root


def ensure_delta_extension() -> Path:
    """Copy the packaged delta extension into DuckDB's default directory for tools that open
    their own connections (Feast's offline store); returns the installed file. No download."""
    source = (
        packaged_extension_dir() / f"v{duckdb.__version__}" / _platform() / "delta.duckdb_extension"
    )
    target_dir = Path.home() / ".duckdb" / "extensions" / f"v{duckdb.__version__}" / _platform()
    target = target_dir / "delta.duckdb_extension"
    if not target.exists() or target.stat().st_size != source.stat().st_size:
        target_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return target


def connect(database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the delta extension loaded and autoinstall switched off."""
    con = duckdb.connect(database)
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET extension_directory = ?", [str(packaged_extension_dir())])
    con.execute("LOAD delta")
    # date casts of timestamps must not depend on the machine's zone: the mesh runs on UTC
    con.execute("SET TimeZone = 'UTC'")
    return con
