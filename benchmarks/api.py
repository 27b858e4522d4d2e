"""Benchmark two data product endpoints over HTTP on loopback, open loop (see loadgen.py).

`GET /ventas/v2/daily-revenue` for random (date, region) pairs that exist, and the paginated
history `GET /ventas/v2/customers/{id}/transactions` (first page of 20) for random customers
with orders, each at --rate requests per second for --seconds; with `--search`, the highest rate
keeping p99 under 50 ms. Every request carries a key of the `load-test` account, so the access
check, the rate limiter and the metrics middleware are all in the measured path.

Needs a built mesh (`mesh build`); uses the data directory of MESH_DATA_DIR (default data/).
Figures are printed and written to docs/benchmarks.md, replacing its `api` section.

    python benchmarks/api.py [--rate 200 --seconds 30] [--search] [--no-pin] [--no-doc]
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from generate import machine  # type: ignore[import-not-found]
from loadgen import (  # type: ignore[import-not-found]
    HEADER,
    Server,
    _load,
    arguments,
    bench,
    command,
    load_test_key,
    raw_request,
    write_section,
)

SAMPLE = 2000


def targets(seed: int = 7) -> dict[str, list[str]]:
    """Request targets per endpoint, drawn from the gold tables so every one answers 200."""
    from lakehouse import storage

    rng = np.random.default_rng(seed)
    daily = storage.table_path("ventas", "gold", "daily_revenue")
    revenue = storage.scan(daily).select("date", "region").collect()
    history = storage.table_path("ventas", "gold", "customer_transaction_history")
    customers = storage.scan(history).select("customer_id").unique().collect()["customer_id"]
    if revenue.is_empty() or customers.is_empty():
        raise SystemExit("the ventas gold tables are empty; run `mesh build` first")
    days = revenue.sample(SAMPLE, with_replacement=True, seed=seed).iter_rows()
    picked = rng.choice(customers.to_numpy(), SAMPLE)
    return {
        "GET /ventas/v2/daily-revenue": [
            f"/ventas/v2/daily-revenue?date={day}&region={region}" for day, region in days
        ],
        "GET /ventas/v2/customers/{id}/transactions": [
            f"/ventas/v2/customers/{c}/transactions?limit=20" for c in picked
        ],
    }


def main() -> None:
    args = arguments(__doc__.splitlines()[0]).parse_args()
    headers = {"X-API-Key": load_test_key()}
    plan = targets()
    rows: list[str] = []
    summary: list[str] = []
    with Server(args.workers, pin=not args.no_pin) as server:
        import httpx

        with httpx.Client(base_url=server.base, timeout=30, headers=headers) as warm:
            for paths in plan.values():
                for path in paths[:100]:
                    warm.get(path).raise_for_status()
        for label, paths in plan.items():
            requests = [raw_request("GET", path, headers) for path in paths]
            got_rows, got_summary = bench(server, requests, args, label)
            rows += [row.replace("| ", f"| {label} | ", 1) for row in got_rows]
            summary += got_summary
    if args.no_doc:
        return
    write_section(
        "api",
        [
            f"### api — {datetime.now(UTC):%Y-%m-%d}",
            "",
            f"Machine: {machine()}",
            f"Command: `{command('api.py', args)}`",
            f"({args.workers} uvicorn worker(s); {server.placement}; load average at the end "
            f"{_load()}). Aim: p99 under 20 ms at 200 req/s.",
            "",
            "| endpoint " + HEADER[0],
            "|---" + HEADER[1],
            *rows,
            "",
            *summary,
        ],
    )


if __name__ == "__main__":
    main()
