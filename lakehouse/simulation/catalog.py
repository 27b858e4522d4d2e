"""Fixed vocabularies of the marketplace: regions, currencies, categories, names."""

from __future__ import annotations

import numpy as np

from lakehouse import reference as ref

REGIONS = np.array(ref.REGIONS)
REGION_WEIGHTS = np.array([0.30, 0.30, 0.25, 0.15])
CURRENCIES = np.array(ref.CURRENCIES)
FX_PER_USD = np.array([ref.FX_PER_USD[c] for c in ref.CURRENCIES])
PROMISED_TRANSIT_DAYS = np.array([5, 3, 3, 6])  # by region

PAYMENT_METHODS = np.array(["card", "paypal", "bank_transfer", "pix", "oxxo", "wallet"])
# rows: region; columns: payment method
METHOD_WEIGHTS = np.array(
    [
        [0.35, 0.10, 0.05, 0.30, 0.15, 0.05],
        [0.60, 0.25, 0.05, 0.00, 0.00, 0.10],
        [0.50, 0.25, 0.15, 0.00, 0.00, 0.10],
        [0.45, 0.15, 0.10, 0.00, 0.00, 0.30],
    ]
)
FAILURE_REASONS = np.array(["insufficient_funds", "card_declined", "timeout", "fraud_suspected"])

CATEGORIES = {
    "electronics": ("phones", "laptops", "audio"),
    "home": ("kitchen", "furniture", "decor"),
    "fashion": ("women", "men", "shoes"),
    "beauty": ("skincare", "makeup"),
    "sports": ("fitness", "outdoor"),
    "toys": ("kids", "games"),
    "books": ("fiction", "nonfiction"),
    "grocery": ("snacks", "beverages"),
}
CATEGORY_NAMES = np.array(list(CATEGORIES))
CATEGORY_PRICE_USD = np.array([250.0, 60.0, 45.0, 25.0, 40.0, 30.0, 15.0, 8.0])
CATEGORY_WEIGHTS = np.array([0.12, 0.16, 0.18, 0.12, 0.10, 0.10, 0.10, 0.12])
BRANDS = np.array(["Acme", "Nova", "Orbit", "Zenit", "Andes", "Polar", "Tula", "Kiri"])

CHANNELS = np.array(["email", "push", "sms"])
CARRIERS = np.array(["RapidoEx", "NorthPost", "EuroShip", "PacificLine"])  # by region
RETURN_REASONS = np.array(["late_delivery", "damaged", "not_as_described", "changed_mind"])

FIRST_NAMES = np.array(
    [
        "Ana",
        "Luis",
        "Maria",
        "Carlos",
        "Sofia",
        "Diego",
        "Lucia",
        "Jorge",
        "Elena",
        "Pablo",
        "Emma",
        "Noah",
        "Olivia",
        "Liam",
        "Mia",
        "Lucas",
        "Hannah",
        "Felix",
        "Clara",
        "Jonas",
        "Yuki",
        "Hiro",
        "Mei",
        "Arjun",
        "Priya",
        "Wei",
        "Aiko",
        "Ravi",
        "Laura",
        "Mateo",
    ]
)
LAST_NAMES = np.array(
    [
        "Garcia",
        "Silva",
        "Santos",
        "Lopez",
        "Martinez",
        "Smith",
        "Johnson",
        "Brown",
        "Miller",
        "Davis",
        "Muller",
        "Schmidt",
        "Rossi",
        "Dubois",
        "Novak",
        "Tanaka",
        "Sato",
        "Chen",
        "Wang",
        "Kumar",
        "Singh",
        "Kim",
        "Park",
        "Costa",
        "Pereira",
        "Rojas",
        "Torres",
    ]
)
