select h.*
from {{ ref('heatmap_history') }} as h
inner join (
    select coin, max(snapshot_at) as snapshot_at
    from {{ ref('heatmap_history') }}
    group by coin
) as latest
    on latest.coin = h.coin
    and latest.snapshot_at = h.snapshot_at
