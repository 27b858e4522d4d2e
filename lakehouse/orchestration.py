"""Run every domain's pipeline (and feature job) in dependency order, isolating failures."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

from lakehouse import runs
from lakehouse.context import DomainContext
from lakehouse.registry import Registry, load_registry


class PipelineError(RuntimeError):
    """A pipeline run was asked for something impossible (e.g. an unknown domain)."""


@dataclass
class DomainRun:
    """Outcome of one domain's pipeline: ok, blocked (a quality gate held a product back),
    failed, or skipped (an upstream domain did not finish)."""

    domain: str
    status: str = "ok"
    reason: str = ""
    rows_in: int = 0
    rows_out: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    written: dict[str, int] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status == "ok"


def _module(domain: str, name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"domains.{domain}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"domains.{domain}.{name}":
            return None
        raise


def _upstream_problem(registry: Registry, name: str, results: dict[str, DomainRun]) -> str | None:
    for dep_domain in sorted(registry[name].dependency_domains()):
        upstream = results.get(dep_domain)
        if upstream is not None and upstream.status in ("failed", "skipped"):
            return f"upstream domain {dep_domain} {upstream.status}"
    return None


def _run_domain(module: ModuleType, ctx: DomainContext) -> DomainRun:
    t0 = time.perf_counter()
    result = DomainRun(ctx.name)
    try:
        module.run(ctx)
    except Exception as exc:
        result.status, result.reason = "failed", f"{type(exc).__name__}: {exc}"
    else:
        if ctx.blocked:
            result.status, result.reason = "blocked", "; ".join(ctx.blocked)
    result.seconds = time.perf_counter() - t0
    result.rows_in = ctx.rows_in
    result.rows_out = sum(ctx.rows_out.values())
    result.quarantined = sum(ctx.quarantined.values())
    result.written = dict(ctx.written)
    return result


def run_pipelines(
    domains: list[str] | None = None,
    registry: Registry | None = None,
    on_domain: Callable[[str], None] | None = None,
    full_refresh: bool = False,
) -> list[DomainRun]:
    """Run the pipelines of the given domains (default: all) in dependency order. A failing
    domain does not stop unrelated ones; domains downstream of it are skipped with the reason."""
    registry = registry or load_registry()
    order = registry.topological_order()
    if domains:
        unknown = sorted(set(domains) - set(order))
        if unknown:
            raise PipelineError(f"unknown domain(s) {unknown}; known: {', '.join(order)}")
        order = [d for d in order if d in domains]
    results: dict[str, DomainRun] = {}
    for name in order:
        if on_domain:
            on_domain(name)
        module = _module(name, "pipeline")
        if module is None:
            continue
        problem = _upstream_problem(registry, name, results)
        if problem:
            results[name] = DomainRun(name, status="skipped", reason=problem)
        else:
            ctx = DomainContext(registry[name], registry, full_refresh=full_refresh)
            results[name] = _run_domain(module, ctx)
        r = results[name]
        runs.record(
            f"pipeline {name}",
            r.status,
            r.seconds,
            {"reason": r.reason, "rows_in": r.rows_in, "rows_out": r.rows_out,
             "quarantined": r.quarantined, "written": r.written},
        )  # fmt: skip
    return list(results.values())


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
