"""Ventas (sales) features: customer purchase behaviour and the price change on each customer's
favourite category, snapshotted point in time; and the churn models' feature services."""

from datetime import timedelta

from entities import customer
from feast import FeatureService, FeatureView, Field, FileSource
from feast.data_format import DeltaFormat
from feast.types import Float64, Int64, String
from finanzas import finanzas_customer_fv
from logistica import logistica_customer_fv
from marketing import marketing_customer_fv

from domains.ventas.features import (
    FAV_LOOKBACK_DAYS,
    PREMIUM_SPEND_USD_365D,
    PRICE_CHANGE_DAYS,
    features_path,
    price_change_path,
)

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

ventas_price_change_source = FileSource(
    name="ventas_price_change_source",
    path=str(price_change_path().resolve()),
    file_format=DeltaFormat(),
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="Delta table built by domains.ventas.features.build_price_change_features",
    owner="sales-team@company.com",
    tags={"domain": "ventas"},
)

ventas_price_change_fv = FeatureView(
    name="ventas_price_change_fv",
    entities=[customer],
    ttl=timedelta(days=21),
    schema=[
        Field(name="customer_id", dtype=Int64, description="Customer the snapshot describes"),
        Field(
            name="fav_category",
            dtype=String,
            description=(
                f"Category the customer bought most units of in the {FAV_LOOKBACK_DAYS} days "
                "before the snapshot (completed orders); null without purchases then"
            ),
        ),
        Field(
            name="fav_category_share_90d",
            dtype=Float64,
            description=f"Share of the customer's units in {FAV_LOOKBACK_DAYS} days that were "
            "of the favourite category",
        ),
        Field(
            name="fav_category_price_change_30d",
            dtype=Float64,
            description=(
                "Relative change of the favourite category's average list price (producto."
                f"pricing_history) over the {PRICE_CHANGE_DAYS} days before the snapshot "
                "(0.1 = 10% dearer)"
            ),
        ),
    ],
    source=ventas_price_change_source,
    online=True,
    description=(
        "Weekly snapshots of the price change on each customer's usual category: the customer "
        "view of producto's prices, built by ventas, which alone knows what customers buy"
    ),
    owner="sales-team@company.com",
    tags={"domain": "ventas", "pii": "false"},
)

churn_v2 = FeatureService(
    name="churn_v2",
    features=[
        ventas_customer_fv,
        ventas_price_change_fv,
        logistica_customer_fv,
        marketing_customer_fv,
        finanzas_customer_fv,
    ],
    description=(
        "Federated features of the second churn model: purchases and favourite-category price "
        "changes (ventas), delivery experience (logistica), campaign pressure (marketing), "
        "payment trouble (finanzas)"
    ),
    owner="sales-team@company.com",
    tags={"model": "churn", "domains": "ventas,logistica,marketing,finanzas"},
)
