"""Producto (catalogue) features: price, age and reviews per product, snapshotted daily."""

from datetime import timedelta

from entities import product
from feast import FeatureView, Field, FileSource
from feast.data_format import DeltaFormat
from feast.types import Float64, Int64, String

from domains.producto.features import PRICE_CHANGE_DAYS, features_path
from lakehouse.registry import load_registry

OWNER = load_registry()["producto"].owner

producto_product_source = FileSource(
    name="producto_product_source",
    path=str(features_path().resolve()),
    file_format=DeltaFormat(),
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="Delta table built by domains.producto.features.build",
    owner=OWNER,
    tags={"domain": "producto"},
)

producto_product_fv = FeatureView(
    name="producto_product_fv",
    entities=[product],
    ttl=timedelta(days=3),
    schema=[
        Field(name="product_id", dtype=Int64, description="Product the snapshot describes"),
        Field(name="category", dtype=String, description="Catalogue category (electronics, ...)"),
        Field(
            name="current_price",
            dtype=Float64,
            description="List price in USD in force at the snapshot, from price changes known then",
        ),
        Field(
            name="price_change_30d",
            dtype=Float64,
            description=(
                f"Relative change of the list price over the {PRICE_CHANGE_DAYS} days before "
                "the snapshot (0.1 = 10% dearer); null for products launched since"
            ),
        ),
        Field(
            name="days_since_launch",
            dtype=Int64,
            description="Whole days from the product's launch date to the snapshot",
        ),
        Field(
            name="avg_rating",
            dtype=Float64,
            description="Mean rating (1-5) of the reviews known at the snapshot; null if none",
        ),
        Field(
            name="total_reviews",
            dtype=Int64,
            description="Reviews of the product known at the snapshot",
        ),
    ],
    source=producto_product_source,
    online=True,
    description=(
        "Daily snapshots of each product's price and reviews; changes and reviews count once "
        "ingested"
    ),
    owner=OWNER,
    tags={"domain": "producto", "pii": "false"},
)
