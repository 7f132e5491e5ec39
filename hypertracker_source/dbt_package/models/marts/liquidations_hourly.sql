{{
    config(
        materialized='incremental',
        unique_key=['coin', 'side', 'hour'],
        incremental_strategy='delete+insert',
    )
}}

with fills as (
    select
        *,
        date_trunc('hour', filled_at) as hour
    from {{ ref('stg_liquidation_fills') }}
)
{% if is_incremental() %}
-- rebuild only the hours whose fill count changed since the last run: fills are merged on their
-- key and never change in place, so a changed count is a new (possibly late) fill in that hour
, raw_hours as (
    select hour, count(*) as fills
    from fills
    group by hour
)
, built_hours as (
    select hour, sum(fills) as fills
    from {{ this }}
    group by hour
)
, touched_hours as (
    select raw_hours.hour
    from raw_hours
    left join built_hours
        on built_hours.hour = raw_hours.hour
    where built_hours.fills is null
        or built_hours.fills <> raw_hours.fills
)
{% endif %}

select
    coin,
    side,
    max(position_closed) as position_closed,
    hour,
    count(*) as fills,
    count(distinct address) as wallets,
    sum(size) as size,
    sum(notional_usd) as notional_usd,
    sum(closed_pnl_usd) as closed_pnl_usd
from fills
{% if is_incremental() %}
where hour in (select hour from touched_hours)
{% endif %}
group by coin, side, hour
