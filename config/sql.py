"""Helpers for the few raw SQL statements on the hot paths."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from django.db import connection, connections
from django.db.models import Model
from django.db.models.sql import Query

M = TypeVar("M", bound=Model)


def column_list(model: type[Model], table: str = "") -> str:
    """The model's columns, named, for a raw statement to select (or return) instead of `*`.

    Connections prepare the statements they repeat (DB_PREPARE_THRESHOLD), and PostgreSQL
    refuses to run a prepared statement whose result columns changed ("cached plan must not
    change result type"): after a migration adds a column, a prepared `SELECT *` would fail
    on every connection that prepared it until its process restarted. Named columns keep the
    statement's result as the code that prepared it expects. `table` qualifies each column
    with that name (an alias), for a statement that joins several models' tables."""
    qualifier = f'"{table}".' if table else ""
    return ", ".join(f'{qualifier}"{field.column}"' for field in model._meta.concrete_fields)


@functools.cache
def _loader(model: type[Model], alias: str) -> tuple[list[str], Any, dict[int, Any]]:
    """The model's attribute names in column_list's order, and the converters the ORM would
    apply to those columns' values (a JSON field's parsing, for one), worked out once."""
    fields = model._meta.concrete_fields
    compiler = Query(model).get_compiler(using=alias)
    converters = compiler.get_converters([f.get_col(model._meta.db_table) for f in fields])
    return [f.attname for f in fields], compiler, converters


def model_rows(model: type[M], sql: str, params: Mapping[str, Any] | Sequence[Any]) -> list[M]:
    """Run `sql`, which selects (or returns) column_list(model), and make its rows instances.

    What Model.objects.raw makes of them, values converted as the ORM converts them, without
    the work raw() repeats on every call (matching columns to fields by name, the model's
    init order, the converters): most of a one-row statement's cost in Python."""
    alias = connection.alias
    names, compiler, converters = _loader(model, alias)
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        rows: Any = cursor.fetchall()
    if converters:
        rows = compiler.apply_converters(rows, converters)
    return [model.from_db(alias, names, list(row)) for row in rows]


def model_row(model: type[M], sql: str, params: Mapping[str, Any] | Sequence[Any]) -> M | None:
    """The one instance `sql` selects (model_rows' first), or None when it selects none."""
    rows = model_rows(model, sql, params)
    return rows[0] if rows else None


def joined_model_rows(
    models: Sequence[type[Model]], sql: str, params: Mapping[str, Any] | Sequence[Any]
) -> list[tuple[Model, ...]]:
    """Run `sql`, which selects column_list of each of `models` in turn (a join), and make each
    row one instance of each, as model_rows does for one model."""
    alias = connection.alias
    loaders = [_loader(model, alias) for model in models]
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        rows: Any = cursor.fetchall()
    made = []
    for row in rows:
        instances, start = [], 0
        for model, (names, compiler, converters) in zip(models, loaders, strict=True):
            values = row[start : start + len(names)]
            start += len(names)
            if converters:
                values = next(iter(compiler.apply_converters([values], converters)))
            instances.append(model.from_db(alias, names, list(values)))
        made.append(tuple(instances))
    return made


@functools.cache
def _inserter(model: type[Model], alias: str) -> tuple[list[Any], str]:
    """The model's fields in insert order, and the INSERT naming each column, built once."""
    fields = list(model._meta.concrete_fields)
    assert model._meta.auto_field is None, "the primary key is chosen in Python"
    quote = connections[alias].ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    marks = ", ".join(["%s"] * len(fields))
    return fields, f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({marks})"  # noqa: S608


def model_insert(instance: Model) -> None:
    """Insert a new instance, as `save(force_insert=True)` does, without the ORM compiling the
    same INSERT again on every call (half of a submission's job write in Python).

    Each field's value is prepared as the ORM prepares it (`pre_save`: an upload is stored, an
    auto_now date set; then `get_db_prep_save`). For a model whose primary key Python
    chooses (a UUID), with no save signals, and values, not expressions: every column is
    written, so a field's database default is not used."""
    alias = connection.alias
    database = connections[alias]
    fields, sql = _inserter(type(instance), alias)
    prepared = [
        field.get_db_prep_save(field.pre_save(instance, True), connection=database)
        for field in fields
    ]
    with database.cursor() as cursor:
        cursor.execute(sql, prepared)
    instance._state.adding = False
    instance._state.db = alias
