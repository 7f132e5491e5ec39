select r.*
from {{ ref('risk_history') }} as r
inner join (
    select segment_id, max(snapshot_at) as snapshot_at
    from {{ ref('risk_history') }}
    group by segment_id
) as latest
    on latest.segment_id = r.segment_id
    and latest.snapshot_at = r.snapshot_at
