select
    h.coin,
    cast(h.snapshot_at at time zone 'UTC' as timestamp) as snapshot_at,
    cast(h.price_bin_index as bigint) as price_bin_index,
    cast(h.price_bin_start as double precision) as price_bin_start,
    cast(h.price_bin_end as double precision) as price_bin_end,
    cast((h.price_bin_start + h.price_bin_end) / 2 as double precision) as price_bin_mid,
    cast(h.liquidation_value as double precision) as liquidation_value_usd,
    cast(h.positions_count as bigint) as positions_count,
    cast(h.most_impacted_segment as bigint) as most_impacted_segment_id,
    s.segment_name as most_impacted_segment_name
from {{ source('hypertracker', 'liquidation_heatmap') }} as h
left join {{ ref('stg_segments') }} as s
    on s.segment_id = h.most_impacted_segment
