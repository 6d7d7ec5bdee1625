"""Persistence: async SQLAlchemy store per plugin, exact decimal columns, migrations."""

from corec.core.store.engine import Store
from corec.core.store.types import DecimalColumn

__all__ = ["DecimalColumn", "Store"]
