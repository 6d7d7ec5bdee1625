"""Alembic environment of user_management (run through ``corec db upgrade``)."""

from corec.core.store.migrate import run_env
from corec.plugins.user_management.models import metadata

run_env(metadata)
