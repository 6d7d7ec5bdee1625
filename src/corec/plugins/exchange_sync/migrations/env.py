"""Alembic environment of exchange_sync (run through ``corec db upgrade``)."""

from corec.core.store.migrate import run_env
from corec.plugins.exchange_sync.models import metadata

run_env(metadata)
