with snapshots as (
    select distinct coin, snapshot_at
    from {{ ref('stg_liquidation_heatmap') }}
),

-- the mark price of the coin's last liquidation at or before each snapshot
marks as (
    select
        s.coin,
        s.snapshot_at,
        f.mark_price,
        f.filled_at as mark_at,
        row_number() over (
            partition by s.coin, s.snapshot_at
            order by f.filled_at desc, f.address desc, f.start_position desc
        ) as recency
    from snapshots as s
    inner join {{ ref('stg_liquidation_fills') }} as f
        on f.coin = s.coin
        and f.filled_at <= s.snapshot_at
        and f.mark_price is not null
)

select
    h.coin,
    h.snapshot_at,
    h.price_bin_index,
    h.price_bin_start,
    h.price_bin_end,
    h.price_bin_mid,
    h.liquidation_value_usd,
    h.positions_count,
    h.most_impacted_segment_id,
    h.most_impacted_segment_name,
    m.mark_price,
    m.mark_at,
    h.price_bin_mid - m.mark_price as distance_usd,
    (h.price_bin_mid - m.mark_price) / m.mark_price * 100 as distance_pct,
    case
        when m.mark_price is null then null
        when h.price_bin_end <= m.mark_price then 'below'
        when h.price_bin_start > m.mark_price then 'above'
        else 'at'
    end as side_of_mark
from {{ ref('stg_liquidation_heatmap') }} as h
left join marks as m
    on m.coin = h.coin
    and m.snapshot_at = h.snapshot_at
    and m.recency = 1
