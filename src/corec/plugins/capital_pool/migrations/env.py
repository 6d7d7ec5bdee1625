"""Alembic environment of capital_pool (run through ``corec db upgrade``)."""

from corec.core.store.migrate import run_env
from corec.plugins.capital_pool.models import metadata

run_env(metadata)
