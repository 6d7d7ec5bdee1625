"""Alembic migrations per plugin, run through the plugin's :class:`Store`.

Each plugin with tables has a ``migrations/`` folder (Alembic script location) whose
``env.py`` is two lines::

    from corec.core.store.migrate import run_env
    from corec.plugins.<name>.models import metadata
    run_env(metadata)

:func:`upgrade` runs ``alembic upgrade head`` for one plugin on its :class:`Store`,
sharing the store's connection (Alembic's "connection sharing" recipe), with the
plugin's own version table so several plugins may share one database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData

from corec.core.store.engine import Store


def _alembic_config(script_location: Path, version_table: str, connection: Any = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["version_table"] = version_table
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def run_env(metadata: MetaData) -> None:
    """Body of a plugin's ``migrations/env.py``: migrate on the shared connection.

    Raises:
        RuntimeError: Alembic was invoked without a connection (use ``corec db upgrade``).
    """
    cfg = context.config
    connection = cfg.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run plugin migrations through `corec db upgrade`, not the alembic CLI")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=cfg.attributes["version_table"],
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def upgrade(store: Store, script_location: Path) -> str | None:
    """Upgrade ``store`` to the newest revision in ``script_location``; return it."""

    def _run(sync_connection: Any) -> str | None:
        cfg = _alembic_config(script_location, store.version_table, sync_connection)
        command.upgrade(cfg, "head")
        return MigrationContext.configure(
            sync_connection, opts={"version_table": store.version_table}
        ).get_current_revision()

    return await store.write(_run)


async def current_revision(store: Store) -> str | None:
    """The store's current revision (``None`` before the first upgrade)."""

    def _current(sync_connection: Any) -> str | None:
        return MigrationContext.configure(
            sync_connection, opts={"version_table": store.version_table}
        ).get_current_revision()

    return await store.read(_current)


def head_revision(script_location: Path) -> str | None:
    """The newest revision in ``script_location``."""
    return ScriptDirectory.from_config(
        _alembic_config(script_location, "unused")
    ).get_current_head()


async def revision(
    store: Store,
    script_location: Path,
    message: str,
    *,
    autogenerate: bool = True,
    rev_id: str | None = None,
) -> str:
    """Write a new revision file into ``script_location`` (for developers).

    With ``autogenerate`` the store is first upgraded to head and the new revision holds
    the difference between the plugin's ``metadata`` and that schema.

    Returns:
        The new revision's id.
    """
    await upgrade(store, script_location)

    def _run(sync_connection: Any) -> str:
        cfg = _alembic_config(script_location, store.version_table, sync_connection)
        script = command.revision(cfg, message=message, autogenerate=autogenerate, rev_id=rev_id)
        assert script is not None and not isinstance(script, list)
        return script.revision

    return await store.write(_run)
