"""``corec db``: database migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from corec.cli.common import ConfigOption, console, load, run_async, with_stores
from corec.core.store.migrate import current_revision

app = typer.Typer(help="Databases: one per plugin, migrated with Alembic.", no_args_is_help=True)


@app.command()
def upgrade(config: Path | None = ConfigOption) -> None:
    """Create or upgrade every enabled plugin's database to the newest revision."""
    cfg, classes = load(config)
    names = [n for n in cfg.sections if classes[n].migrations is not None]

    async def work(stores: dict[str, Any]) -> dict[str, str | None]:
        return {
            name: await current_revision(store)
            for name, store in stores.items()
            if store is not None
        }

    revisions = run_async(lambda: with_stores(cfg, classes, names, work, migrate=True))
    for name in names:
        console.print(
            f"{name}: {cfg.database_url(name).split('://')[0]} at revision {revisions.get(name)}",
            highlight=False,
        )
