"""One place decides where things live: a typed settings object read from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]

LAYERS = ("raw", "curated", "gold", "features", "quarantine")


class Settings(BaseSettings):
    """Paths and defaults of the mesh; every field can be set as MESH_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="MESH_", extra="ignore")

    data_dir: Path = Field(default=PROJECT_ROOT / "data", description="Root of all generated state")
    domains_dir: Path = Field(default=PROJECT_ROOT / "domains", description="Domain folders")
    feature_repo: Path = Field(
        default=PROJECT_ROOT / "feature_repo", description="Feast repository"
    )
    curate_chunk_rows: int = Field(
        default=2_000_000, description="Raw rows per curated commit when a backlog is large"
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    dashboard_port: int = 8501
    mlflow_port: int = 5000
    feast_ui_port: int = 8888

    @property
    def lakehouse_dir(self) -> Path:
        return self.data_dir / "lakehouse"

    @property
    def simulation_dir(self) -> Path:
        return self.data_dir / "simulation"

    @property
    def feast_dir(self) -> Path:
        return self.data_dir / "feast"

    @property
    def mlflow_dir(self) -> Path:
        return self.data_dir / "mlflow"

    @property
    def lineage_dir(self) -> Path:
        return self.data_dir / "lineage"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    def table_path(self, domain: str, layer: str, table: str) -> Path:
        """Location of one Delta table: data/lakehouse/<domain>/<layer>/<table>."""
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}; use one of {', '.join(LAYERS)}")
        return self.lakehouse_dir / domain / layer / table


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings in force for this process (cached; call reset_settings() after changing env)."""
    return Settings()


def reset_settings() -> None:
    """Forget cached settings so the next get_settings() re-reads the environment."""
    get_settings.cache_clear()
