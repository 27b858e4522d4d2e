"""Run every domain's pipeline (and feature job) in dependency order."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lakehouse import runs
from lakehouse.context import DomainContext
from lakehouse.registry import Registry, load_registry


class PipelineError(RuntimeError):
    """A domain pipeline failed; names the domain and the cause."""


@dataclass
class DomainRun:
    """Outcome of one domain's pipeline."""

    domain: str
    written: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _module(domain: str, name: str) -> object | None:
    try:
        return importlib.import_module(f"domains.{domain}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"domains.{domain}.{name}":
            return None
        raise


def run_pipelines(
    domains: list[str] | None = None,
    registry: Registry | None = None,
    on_domain: Callable[[str], None] | None = None,
) -> list[DomainRun]:
    """Run the pipelines of the given domains (default: all) in dependency order."""
    registry = registry or load_registry()
    order = registry.topological_order()
    if domains:
        unknown = sorted(set(domains) - set(order))
        if unknown:
            raise PipelineError(f"unknown domain(s) {unknown}; known: {', '.join(order)}")
        order = [d for d in order if d in domains]
    results = []
    for name in order:
        if on_domain:
            on_domain(name)
        module = _module(name, "pipeline")
        if module is None:
            continue
        ctx = DomainContext(registry[name], registry)
        t0 = time.perf_counter()
        try:
            module.run(ctx)  # type: ignore[attr-defined]
        except Exception as exc:
            runs.record(f"pipeline {name}", "failed", time.perf_counter() - t0, {"error": str(exc)})
            raise PipelineError(f"pipeline of domain {name!r} failed: {exc}") from exc
        result = DomainRun(name, ctx.written, ctx.rows, time.perf_counter() - t0)
        runs.record(
            f"pipeline {name}", "ok", result.seconds, {"written": ctx.written, "rows": ctx.rows}
        )
        results.append(result)
    return results


def run_features(
    registry: Registry | None = None,
    on_domain: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Run every domain's feature job (`domains/<d>/features.py: build() -> rows`)."""
    registry = registry or load_registry()
    rows: dict[str, int] = {}
    for name in registry.topological_order():
        module = _module(name, "features")
        if module is None or not hasattr(module, "build"):
            continue
        if on_domain:
            on_domain(name)
        t0 = time.perf_counter()
        written = module.build()
        runs.record(f"features {name}", "ok", time.perf_counter() - t0, {"rows": written})
        rows[name] = int(written)
    return rows
