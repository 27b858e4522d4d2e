"""Conformed reference data every domain shares: regions, currencies and fixed FX rates."""

from __future__ import annotations

REGIONS = ("LATAM", "NA", "EU", "APAC")
CURRENCIES = ("USD", "EUR", "BRL", "MXN")
FX_PER_USD = {"USD": 1.0, "EUR": 0.92, "BRL": 5.0, "MXN": 17.0}  # units of currency per USD
