{# Seconds since 1970 of a timestamp, as a number, on DuckDB and PostgreSQL alike. #}
{% macro epoch_seconds(column) -%}
cast(extract(epoch from {{ column }}) as double precision)
{%- endmacro %}
