"""Alembic environment of trading_execution (run through ``corec db upgrade``)."""

from corec.core.store.migrate import run_env
from corec.plugins.trading_execution.models import metadata

run_env(metadata)
