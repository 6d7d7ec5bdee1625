"""``alerts``: raw alerts from any plugin or the nucleus (see :class:`Alert`)."""

from corec.core.notices import SEVERITIES, Alert, Severity

__all__ = ["SEVERITIES", "Alert", "Severity"]
