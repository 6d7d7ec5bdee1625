"""Alembic environment of macro_sync (run through ``corec db upgrade``)."""

from corec.core.store.migrate import run_env
from corec.plugins.macro_sync.models import metadata

run_env(metadata)
