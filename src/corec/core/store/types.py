"""Column types for money and quantities.

:class:`DecimalColumn` stores :class:`~decimal.Decimal` exactly: ``NUMERIC(38, 18)`` on
PostgreSQL, and text on SQLite (whose NUMERIC affinity would turn values into binary
floats). Binding a ``float`` is refused, so a float can never reach a money column.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Dialect, Numeric, String
from sqlalchemy.types import TypeDecorator, TypeEngine

from corec.core.money import canonical

NUMERIC_PRECISION = 38
NUMERIC_SCALE = 18


class DecimalColumn(TypeDecorator[Decimal]):
    """Exact decimal column: NUMERIC(38, 18) on PostgreSQL, TEXT on SQLite.

    Raises:
        TypeError: on binding a value that is not ``Decimal`` (or ``int``).
        ValueError: on binding a NaN or infinite Decimal.
    """

    impl = Numeric(NUMERIC_PRECISION, NUMERIC_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(NUMERIC_PRECISION, NUMERIC_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
            raise TypeError(f"decimal column needs Decimal, got {type(value).__name__} {value!r}")
        value = Decimal(value)
        if not value.is_finite():
            raise ValueError(f"decimal column refuses {value}")
        if dialect.name == "sqlite":
            return format(value, "f")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return canonical(value if isinstance(value, Decimal) else Decimal(str(value)))
