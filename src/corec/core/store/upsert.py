"""Dialect-aware ``INSERT … ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert


def insert_ignoring_duplicates(
    table: Table, dialect: str, conflict_columns: Sequence[str]
) -> Insert:
    """An INSERT into ``table`` that skips rows whose ``conflict_columns`` already exist.

    Raises:
        ValueError: ``dialect`` is neither ``sqlite`` nor ``postgresql``.
    """
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(conflict_columns))
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(
            index_elements=list(conflict_columns)
        )
    raise ValueError(f"no insert-or-ignore for dialect {dialect!r}")


def upsert(
    table: Table, dialect: str, conflict_columns: Sequence[str], update_columns: Sequence[str]
) -> Insert:
    """An INSERT into ``table`` that updates ``update_columns`` when the row exists.

    Raises:
        ValueError: ``dialect`` is neither ``sqlite`` nor ``postgresql``.
    """
    if dialect == "sqlite":
        stmt = sqlite.insert(table)
    elif dialect == "postgresql":
        stmt = postgresql.insert(table)
    else:
        raise ValueError(f"no upsert for dialect {dialect!r}")
    return stmt.on_conflict_do_update(
        index_elements=list(conflict_columns), set_={c: stmt.excluded[c] for c in update_columns}
    )
