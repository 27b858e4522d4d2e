"""Size presets of the simulated marketplace."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

DEFAULT_END_DATE = date(2026, 6, 30)
DEFAULT_SEED = 42
DEFAULT_DIRTY_SHARE = 0.03


@dataclass(frozen=True)
class Scale:
    """How big the world is: customers at the start, simulated days, catalogue size."""

    name: str
    customers: int
    days: int
    products: int
    flush_days: int  # simulated days buffered per Delta commit; bounds peak memory


SCALES: dict[str, Scale] = {
    s.name: s
    for s in (
        Scale("tiny", customers=500, days=60, products=120, flush_days=30),
        Scale("small", customers=5_000, days=180, products=600, flush_days=30),
        Scale("medium", customers=100_000, days=365, products=5_000, flush_days=14),
        Scale("large", customers=1_000_000, days=365, products=20_000, flush_days=4),
    )
}


def get_scale(name: str) -> Scale:
    """Look up a preset by name, with an error that lists the valid ones."""
    try:
        return SCALES[name]
    except KeyError:
        raise ValueError(f"unknown scale {name!r}; use one of {', '.join(SCALES)}") from None
