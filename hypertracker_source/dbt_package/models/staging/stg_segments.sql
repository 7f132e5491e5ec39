select
    cast(id as bigint) as segment_id,
    name as segment_name,
    category as segment_category,
    emoji as segment_emoji
from {{ source('hypertracker', 'segments') }}
