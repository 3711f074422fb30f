"""Helpers for the few raw SQL statements on the hot paths."""

from __future__ import annotations

from django.db.models import Model


def column_list(model: type[Model]) -> str:
    """The model's columns, named, for a raw statement to select (or return) instead of `*`.

    Connections prepare the statements they repeat (DB_PREPARE_THRESHOLD), and PostgreSQL
    refuses to run a prepared statement whose result columns changed ("cached plan must not
    change result type"): after a migration adds a column, a prepared `SELECT *` would fail
    on every connection that prepared it until its process restarted. Named columns keep the
    statement's result as the code that prepared it expects."""
    return ", ".join(f'"{field.column}"' for field in model._meta.concrete_fields)
