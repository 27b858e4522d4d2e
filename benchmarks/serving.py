"""Benchmark `POST /churn/v1/predict` over HTTP on loopback, open loop (see loadgen.py).

`--search` then looks for the highest rate whose p99 stays under 50 ms: short runs, doubling from
--rate until one fails, then bisection, bounded by --search-runs runs and --search-budget seconds.

Needs a built mesh (`mesh build`); uses the data directory of MESH_DATA_DIR (default data/) and
issues a key of the `load-test` account there. Figures are printed and written to
docs/benchmarks.md, replacing its serving section.

    python benchmarks/serving.py [--rate 200 --seconds 30] [--search] [--no-pin] [--no-doc]
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
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

PATH = "/churn/v1/predict"


def main() -> None:
    args = arguments(__doc__.splitlines()[0]).parse_args()
    from lakehouse.features import online_features

    candidates = list(range(1, 400))
    online = online_features("churn_v2", candidates)
    ids = [c for c, v in zip(candidates, online["total_purchases_30d"], strict=True) if v]
    if not ids:
        raise SystemExit("no customer has features online; run `mesh build` first")
    headers = {"X-API-Key": load_test_key()}
    requests = [
        raw_request("POST", PATH, headers, json.dumps({"customer_id": c}).encode()) for c in ids
    ]
    with Server(args.workers, pin=not args.no_pin) as server:
        with httpx.Client(base_url=server.base, timeout=60, headers=headers) as warm:
            for i in range(200):  # each worker loads the champion once
                warm.post(PATH, json={"customer_id": ids[i % len(ids)]}).raise_for_status()
        rows, summary = bench(server, requests, args, f"POST {PATH}")
    if args.no_doc:
        return
    write_section(
        "serving",
        [
            f"### serving — {datetime.now(UTC):%Y-%m-%d}",
            "",
            f"Machine: {machine()}",
            f"Command: `{command('serving.py', args)}`",
            f"({args.workers} uvicorn worker(s); {server.placement}; load average at the end "
            f"{_load()})",
            "",
            *HEADER,
            *rows,
            "",
            *summary,
        ],
    )


if __name__ == "__main__":
    main()
