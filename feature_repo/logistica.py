"""Logistica (fulfilment) features: delivery experience per customer, stock on hand per product.

Stock is published here rather than by producto: producto may not read logistica (logistica
depends on ventas, which depends on producto), and the warehouses are logistica's.
"""

from datetime import timedelta

from entities import customer, product
from feast import FeatureView, Field, FileSource
from feast.data_format import DeltaFormat
from feast.types import Float64, Int64

from domains.logistica.features import (
    SERVICE_DAYS,
    STOCK_MAX_AGE_DAYS,
    customer_features_path,
    product_features_path,
)
from domains.logistica.pipeline import LOW_STOCK_UNITS
from lakehouse.registry import load_registry

OWNER = load_registry()["logistica"].owner
TAGS = {"domain": "logistica", "pii": "false"}

logistica_customer_source = FileSource(
    name="logistica_customer_source",
    path=str(customer_features_path().resolve()),
    file_format=DeltaFormat(),
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="Delta table built by domains.logistica.features.build_customer_features",
    owner=OWNER,
    tags={"domain": "logistica"},
)

logistica_product_source = FileSource(
    name="logistica_product_source",
    path=str(product_features_path().resolve()),
    file_format=DeltaFormat(),
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="Delta table built by domains.logistica.features.build_product_features",
    owner=OWNER,
    tags={"domain": "logistica"},
)

logistica_customer_fv = FeatureView(
    name="logistica_customer_fv",
    entities=[customer],
    ttl=timedelta(days=21),
    schema=[
        Field(name="customer_id", dtype=Int64, description="Customer the snapshot describes"),
        Field(
            name="avg_delivery_time_days",
            dtype=Float64,
            description=(
                f"Mean days from dispatch to delivery over the {SERVICE_DAYS} days before the "
                "snapshot; null without deliveries"
            ),
        ),
        Field(
            name="on_time_delivery_rate",
            dtype=Float64,
            description=(
                f"Share of deliveries in the {SERVICE_DAYS} days before the snapshot that arrived "
                "by the promised time; null without deliveries"
            ),
        ),
        Field(
            name="total_shipments_30d",
            dtype=Int64,
            description="Shipments delivered in the 30 days before the snapshot",
        ),
        Field(
            name="late_deliveries_30d",
            dtype=Int64,
            description="Shipments delivered after the promised time in the last 30 days",
        ),
        Field(
            name="returns_30d",
            dtype=Int64,
            description="Returns the customer made in the 30 days before the snapshot",
        ),
        Field(
            name="return_rate_30d",
            dtype=Float64,
            description=(
                "Share of the shipments delivered in the last 30 days that had been returned by "
                "the snapshot; null without deliveries"
            ),
        ),
    ],
    source=logistica_customer_source,
    online=True,
    description=(
        "Weekly snapshots of each customer's delivery experience; a shipment counts once its "
        "delivery was ingested"
    ),
    owner=OWNER,
    tags=TAGS,
)

logistica_product_fv = FeatureView(
    name="logistica_product_fv",
    entities=[product],
    # Stock is counted weekly and a count stays valid for STOCK_MAX_AGE_DAYS; snapshots stop at
    # the newest count, so the last one must outlive the week until the next count arrives.
    ttl=timedelta(days=8),
    schema=[
        Field(name="product_id", dtype=Int64, description="Product the snapshot describes"),
        Field(
            name="stock_level",
            dtype=Int64,
            description=(
                "Units on hand across warehouses, from each warehouse's latest stock count known "
                f"at the snapshot (counts older than {STOCK_MAX_AGE_DAYS} days are ignored)"
            ),
        ),
        Field(
            name="low_stock_warehouses",
            dtype=Int64,
            description=f"Warehouses holding fewer than {LOW_STOCK_UNITS} units of the product",
        ),
        Field(
            name="stock_age_days",
            dtype=Int64,
            description="Whole days since the oldest warehouse count in stock_level was taken",
        ),
    ],
    source=logistica_product_source,
    online=True,
    description="Daily snapshots of stock on hand per product; a count counts once ingested",
    owner=OWNER,
    tags=TAGS,
)
