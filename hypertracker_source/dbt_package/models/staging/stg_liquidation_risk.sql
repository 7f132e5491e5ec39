select
    cast(r.segment_id as bigint) as segment_id,
    s.segment_name,
    s.segment_category,
    r.coin,
    cast(r.snapshot_at at time zone 'UTC' as timestamp) as snapshot_at,
    cast(r.total_value as double precision) as open_value_usd,
    cast(r.risk_value as double precision) as risk_value_usd,
    cast(r.percent_risk as double precision) as percent_at_risk
from {{ source('hypertracker', 'liquidation_risk') }} as r
left join {{ ref('stg_segments') }} as s
    on s.segment_id = r.segment_id
