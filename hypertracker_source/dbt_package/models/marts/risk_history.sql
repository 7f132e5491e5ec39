select
    segment_id,
    segment_name,
    segment_category,
    coin,
    snapshot_at,
    open_value_usd,
    risk_value_usd,
    percent_at_risk,
    case when open_value_usd > 0 then risk_value_usd / open_value_usd end as share_at_risk
from {{ ref('stg_liquidation_risk') }}
