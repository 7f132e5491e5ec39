{# Hand-written: dbt_utils.unique_combination_of_columns does this, but installing dbt_utils
   needs `dbt deps` to reach dbt's package hub, and this package must build offline. #}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as duplicates
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
