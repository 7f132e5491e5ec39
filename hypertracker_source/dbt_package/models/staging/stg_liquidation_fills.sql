select
    cast(time at time zone 'UTC' as timestamp) as filled_at,
    coin,
    side,
    case side when 'A' then 'long' when 'B' then 'short' end as position_closed,
    address,
    cast(px as double precision) as price,
    cast(sz as double precision) as size,
    cast(px * sz as double precision) as notional_usd,
    cast(start_position as double precision) as start_position,
    cast(closed_pnl as double precision) as closed_pnl_usd,
    cast(fee as double precision) as fee,
    fee_token,
    cast(liquidation_mark_px as double precision) as mark_price,
    liquidation_method,
    hash,
    tid,
    oid
from {{ source('hypertracker', 'liquidation_fills') }}
