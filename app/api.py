"""The ASGI app of the mesh: shared platform routes plus every domain's router, discovered.

A domain publishes an API by adding `domains/<name>/api.py` with a module-level `router` (or
`routers`, a list, when it serves several major versions at once); nothing here names a
domain. Run it with `uvicorn app.api:create_app --factory`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from fastapi import APIRouter, FastAPI

from lakehouse import __version__
from lakehouse.api import install, tag_products
from lakehouse.config import get_settings


def domain_api_modules(domains_dir: Path | None = None) -> list[str]:
    """Module names `domains.<name>.api` of every domain folder holding an api.py, sorted."""
    root = Path(domains_dir) if domains_dir is not None else get_settings().domains_dir
    if not root.is_dir():
        return []
    return [
        f"domains.{folder.name}.api"
        for folder in sorted(root.iterdir())
        if folder.is_dir() and (folder / "api.py").is_file()
    ]


def load_routers(module_name: str) -> list[APIRouter]:
    """The routers a domain API module exposes: its `routers` list, else its `router`."""
    module = importlib.import_module(module_name)
    routers = getattr(module, "routers", None)
    if routers is None:
        routers = [getattr(module, "router", None)]
    if not routers or not all(isinstance(r, APIRouter) for r in routers):
        raise TypeError(
            f"{module.__file__} has no APIRouter named `router`; define "
            '`router = APIRouter(prefix="/<domain>/v<N>", tags=["<domain>"])` in it'
        )
    return list(routers)


def create_app() -> FastAPI:
    """The FastAPI app serving every domain's data product API, with docs at /docs."""
    app = FastAPI(
        title="Mesh data products",
        version=__version__,
        description="Data product APIs published by the domains of the mesh.",
        docs_url="/docs",
    )
    install(app)
    for module_name in [*domain_api_modules(), "models.api"]:  # models: the ML platform's
        for router in load_routers(module_name):
            tag_products(router)
            app.include_router(router)
    return app
