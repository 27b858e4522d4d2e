"""Ventas (sales) features: customer purchase behaviour, snapshotted point in time."""

from datetime import timedelta

from entities import customer
from feast import FeatureService, FeatureView, Field, FileSource
from feast.data_format import DeltaFormat
from feast.types import Float64, Int64, String

from domains.ventas.features import PREMIUM_SPEND_USD_365D, features_path

ventas_customer_source = FileSource(
    name="ventas_customer_source",
    path=str(features_path().resolve()),
    file_format=DeltaFormat(),
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="Delta table built by domains.ventas.features.build_customer_features",
    owner="sales-team@company.com",
    tags={"domain": "ventas"},
)

ventas_customer_fv = FeatureView(
    name="ventas_customer_fv",
    entities=[customer],
    ttl=timedelta(days=90),
    schema=[
        Field(name="customer_id", dtype=Int64, description="Customer the snapshot describes"),
        Field(
            name="total_purchases_7d",
            dtype=Float64,
            description="USD spent on completed orders in the 7 days before the snapshot",
        ),
        Field(
            name="total_purchases_30d",
            dtype=Float64,
            description="USD spent on completed orders in the 30 days before the snapshot",
        ),
        Field(
            name="transaction_count_7d",
            dtype=Int64,
            description="Completed orders in the 7 days before the snapshot",
        ),
        Field(
            name="avg_basket_size_30d",
            dtype=Float64,
            description="Mean items per completed order over 30 days; null without orders",
        ),
        Field(
            name="days_since_last_purchase",
            dtype=Int64,
            description="Whole days since the last completed order; null if none yet",
        ),
        Field(
            name="preferred_payment_method",
            dtype=String,
            description="Most used payment method over 90 days (card, paypal, pix, ...)",
        ),
        Field(
            name="is_premium_customer",
            dtype=Int64,
            description=(
                f"1 if completed spend over the last 365 days exceeds "
                f"{PREMIUM_SPEND_USD_365D:,.0f} USD, else 0"
            ),
        ),
    ],
    source=ventas_customer_source,
    online=True,
    description="Weekly snapshots of each customer's purchases; only orders already ingested count",
    owner="sales-team@company.com",
    tags={"domain": "ventas", "pii": "false"},
)

churn_v1 = FeatureService(
    name="churn_v1",
    features=[ventas_customer_fv],
    description="Features of the first churn model: ventas purchase behaviour",
    owner="sales-team@company.com",
    tags={"model": "churn", "domains": "ventas"},
)
