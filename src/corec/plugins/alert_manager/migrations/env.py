"""Alembic environment of alert_manager (run through ``corec db upgrade``)."""

from corec.core.store.migrate import run_env
from corec.plugins.alert_manager.models import metadata

run_env(metadata)
