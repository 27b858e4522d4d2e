"""Marketing (campaigns) features: campaign pressure, engagement and RFM segment per customer."""

from datetime import timedelta

from entities import customer
from feast import FeatureView, Field, FileSource
from feast.data_format import DeltaFormat
from feast.types import Float64, Int64, String

from domains.marketing.features import TOUCH_LOOKBACK_DAYS, features_path
from lakehouse.registry import load_registry

OWNER = load_registry()["marketing"].owner

marketing_customer_source = FileSource(
    name="marketing_customer_source",
    path=str(features_path().resolve()),
    file_format=DeltaFormat(),
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="Delta table built by domains.marketing.features.build",
    owner=OWNER,
    tags={"domain": "marketing"},
)

marketing_customer_fv = FeatureView(
    name="marketing_customer_fv",
    entities=[customer],
    ttl=timedelta(days=21),
    schema=[
        Field(name="customer_id", dtype=Int64, description="Customer the snapshot describes"),
        Field(
            name="emails_received_7d",
            dtype=Int64,
            description="Campaign messages sent to the customer in the 7 days before the snapshot",
        ),
        Field(
            name="emails_received_30d",
            dtype=Int64,
            description="Campaign messages sent to the customer in the 30 days before the snapshot",
        ),
        Field(
            name="open_rate_30d",
            dtype=Float64,
            description="Opens / messages sent over 30 days, capped at 1; null without messages",
        ),
        Field(
            name="click_rate_30d",
            dtype=Float64,
            description="Clicks / messages sent over 30 days, capped at 1; null without messages",
        ),
        Field(
            name="days_since_last_touch",
            dtype=Int64,
            description=(
                "Whole days since the customer's last campaign event (send, open, click or "
                f"conversion); null if none in {TOUCH_LOOKBACK_DAYS} days"
            ),
        ),
        Field(
            name="segment",
            dtype=String,
            description=(
                "RFM segment marketing would have published at the snapshot: champion, loyal, "
                "new, at_risk or hibernating"
            ),
        ),
    ],
    source=marketing_customer_source,
    online=True,
    description=(
        "Weekly snapshots of campaign pressure and engagement per customer; only events and "
        "orders already ingested count"
    ),
    owner=OWNER,
    tags={"domain": "marketing", "pii": "false"},
)
