"""Alembic environment of daily_settlement (run through ``corec db upgrade``)."""

from corec.core.store.migrate import run_env
from corec.plugins.daily_settlement.models import metadata

run_env(metadata)
