"""Inserting thousands of rows with one statement.

`bulk_create` builds one multi-row INSERT per batch; on SQLite its 999-parameter limit cuts a 27-column notice
batch into statements of 37 rows, and preparing every value of every row goes through the query compiler. For the
notice queue and the attempt log, `insert_rows` prepares values the way each field does (`get_db_prep_save`) but
only once for a value shared by every row, passes strings and integers of text and integer columns through as they
are, and hands the rows to the database in one go: COPY on PostgreSQL (psycopg's `executemany` still sends one
INSERT per row, which costs more than the rest of a notice's delivery), the driver's `executemany` elsewhere.
As with `bulk_create`, no `save()` and no signals.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.db import connection, models

_AS_IS = (models.CharField, models.TextField, models.IntegerField, models.ForeignKey)


def _column(field: models.Field, rows: Sequence[Mapping[str, Any]]) -> Callable[[Mapping[str, Any]], Any]:
    """How to get one column's database value from a row."""
    name = field.attname
    if name not in rows[0]:
        default = field.get_db_prep_save(field.get_default(), connection)
        return lambda row: default
    first = rows[0][name]
    if all(row[name] is first for row in rows):
        shared = field.get_db_prep_save(first, connection)
        return lambda row: shared
    if isinstance(field, _AS_IS):
        plain = (str, int, type(None))
        return lambda row: row[name] if type(row[name]) in plain else field.get_db_prep_save(row[name], connection)
    return lambda row: field.get_db_prep_save(row[name], connection)


def insert_rows(model: type[models.Model], rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT `rows` (field attname -> value); omitted fields take their default, evaluated once per call."""
    if not rows:
        return
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    columns = [_column(field, rows) for field in fields]
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)
    values = ([column(row) for column in columns] for row in rows)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for value in values:
                    copy.write_row(value)
            return
        placeholders = ", ".join(["%s"] * len(fields))
        cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({placeholders})", list(values))  # noqa: S608
