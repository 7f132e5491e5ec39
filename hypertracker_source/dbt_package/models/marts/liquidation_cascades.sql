with fills as (
    select
        coin,
        filled_at,
        address,
        side,
        start_position,
        price,
        notional_usd,
        {{ epoch_seconds('filled_at') }} as filled_epoch
    from {{ ref('stg_liquidation_fills') }}
),

gaps as (
    select
        *,
        case
            when filled_epoch - lag(filled_epoch) over (
                partition by coin order by filled_at, address, start_position
            ) <= {{ var('cascade_max_gap_seconds') }}
            then 0
            else 1
        end as starts_burst
    from fills
),

bursts as (
    select
        *,
        sum(starts_burst) over (
            partition by coin order by filled_at, address, start_position
            rows between unbounded preceding and current row
        ) as burst_number
    from gaps
),

ranked as (
    select
        *,
        row_number() over (
            partition by coin, burst_number order by filled_at, address, start_position
        ) as from_first,
        row_number() over (
            partition by coin, burst_number
            order by filled_at desc, address desc, start_position desc
        ) as from_last
    from bursts
),

summary as (
    select
        coin,
        min(filled_at) as started_at,
        max(filled_at) as ended_at,
        count(*) as fills,
        count(distinct address) as wallets,
        sum(notional_usd) as notional_usd,
        sum(case when side = 'A' then notional_usd else 0 end) as longs_notional_usd,
        sum(case when side = 'B' then notional_usd else 0 end) as shorts_notional_usd,
        max(case when from_first = 1 then price end) as first_price,
        max(case when from_last = 1 then price end) as last_price
    from ranked
    group by coin, burst_number
)

select
    coin || '@' || cast(cast(round({{ epoch_seconds('started_at') }} * 1000) as bigint) as varchar)
        as cascade_id,
    coin,
    started_at,
    ended_at,
    {{ epoch_seconds('ended_at') }} - {{ epoch_seconds('started_at') }} as duration_seconds,
    fills,
    wallets,
    notional_usd,
    longs_notional_usd,
    shorts_notional_usd,
    first_price,
    last_price,
    (last_price - first_price) / first_price * 100 as price_move_pct
from summary
where wallets >= {{ var('cascade_min_wallets') }}
    and notional_usd >= {{ var('cascade_min_notional_usd') }}
