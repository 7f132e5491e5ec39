-- liquidations_hourly holds every fill once: its totals per coin and side equal the fills'
with hourly as (
    select coin, side, sum(fills) as fills, sum(notional_usd) as notional_usd
    from {{ ref('liquidations_hourly') }}
    group by coin, side
),

raw as (
    select coin, side, count(*) as fills, sum(notional_usd) as notional_usd
    from {{ ref('stg_liquidation_fills') }}
    group by coin, side
)

select raw.coin, raw.side, raw.fills, hourly.fills as hourly_fills
from raw
full outer join hourly
    on hourly.coin = raw.coin
    and hourly.side = raw.side
where raw.fills is null
    or hourly.fills is null
    or raw.fills <> hourly.fills
    or abs(raw.notional_usd - hourly.notional_usd) > 0.000001 * raw.notional_usd
