"""Persistence: a store per plugin (async API, whole transactions), exact decimal columns,
migrations, and the naming convention every plugin's tables use."""

from sqlalchemy import MetaData

from corec.core.store.engine import Store
from corec.core.store.types import DecimalColumn

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint names, so Alembic can alter them on SQLite and PostgreSQL alike."""


def plugin_metadata() -> MetaData:
    """A new ``MetaData`` for one plugin's tables, with :data:`NAMING_CONVENTION`."""
    return MetaData(naming_convention=NAMING_CONVENTION)


__all__ = ["NAMING_CONVENTION", "DecimalColumn", "Store", "plugin_metadata"]
