"""Shared CLI plumbing: loading configuration, opening stores, errors and output.

Exit codes: 0 success; 1 an unexpected failure; 2 a refused input or an invalid
configuration (the message says what and where; nothing was written).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from sqlalchemy.engine import make_url

from corec.core.config import CorecConfig, load_config
from corec.core.errors import ConfigError, CorecError, InvalidInput, PluginError
from corec.core.logging import configure_logging
from corec.core.plugin import Plugin
from corec.core.registry import discover_plugins
from corec.core.store import Store
from corec.core.store.migrate import current_revision, upgrade

T = TypeVar("T")
EXIT_FAILURE = 1
EXIT_INVALID = 2

console = Console()
err_console = Console(stderr=True)

ConfigOption = typer.Option(
    None,
    "--config",
    "-c",
    envvar="COREC_CONFIG",
    help="YAML configuration file (default: embedded defaults; env COREC_CONFIG).",
    show_default=False,
)


def fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    """Print ``message`` to stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load(
    config_path: Path | None, *, log_to_file: bool = False
) -> tuple[CorecConfig, dict[str, type[Plugin]]]:
    """The validated configuration and the installed plugin classes (exit 2 on errors).

    Logging goes to stderr (warnings and up, so stdout stays the command's output) and,
    with ``log_to_file``, to the node's JSON log file as well (commands that write).
    """
    try:
        classes = discover_plugins()
        config = load_config(config_path, {name: cls.Config for name, cls in classes.items()})
    except ConfigError as exc:
        fail(str(exc))
    except PluginError as exc:
        fail(str(exc), EXIT_FAILURE)
    log = config.node.log
    file = (log.file or config.node.data_dir / "corec.log") if log_to_file else None
    try:
        configure_logging(level=log.level, console_level=log.console_level, file=file)
    except OSError as exc:
        fail(f"cannot write the log file {file}: {exc.strerror or exc}")
    return config, classes


def run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine, turning CoreC's errors into exit codes and messages."""
    try:
        return asyncio.run(factory())
    except InvalidInput as exc:
        fail(str(exc))
    except ConfigError as exc:
        fail(str(exc))
    except CorecError as exc:
        fail(f"{type(exc).__name__}: {exc}", EXIT_FAILURE)
    except OSError as exc:
        fail(f"{exc.filename or ''}: {exc.strerror or exc}", EXIT_FAILURE)


async def open_store(
    config: CorecConfig, classes: dict[str, type[Plugin]], name: str, *, migrate: bool
) -> Store | None:
    """The plugin's store; migrated when ``migrate``, else ``None`` if it was never created."""
    cls = classes[name]
    if cls.migrations is None or name not in config.sections:
        return None
    url = config.database_url(name)
    if not migrate and _missing_sqlite_file(url):
        return None
    store = Store(url, name=name)
    if migrate:
        await upgrade(store, cls.migrations)
    elif await current_revision(store) is None:
        await store.dispose()
        return None
    return store


def _missing_sqlite_file(url: str) -> bool:
    parsed = make_url(url)
    database = parsed.database
    return parsed.get_backend_name() == "sqlite" and bool(database) and not Path(database).exists()  # type: ignore[arg-type]


def json_default(value: Any) -> Any:
    """JSON for values ``json`` does not know: Decimals as plain decimal strings."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def print_json(data: Any) -> None:
    """One JSON document on stdout (Decimals as strings)."""
    sys.stdout.write(json.dumps(data, default=json_default, indent=2) + "\n")


def fmt_usd(value: Any) -> str:
    """``1,234.56`` from a Decimal or its string."""
    if value is None:
        return "-"
    return f"{Decimal(value):,.2f}"


def fmt_pct(value: Any) -> str:
    """A fraction as a signed percent (``0.0125`` → ``+1.25%``), ``n/a`` for ``None``."""
    return "n/a" if value is None else f"{Decimal(value) * 100:+.2f}%"


async def with_stores(
    config: CorecConfig,
    classes: dict[str, type[Plugin]],
    names: list[str],
    work: Callable[[dict[str, Store | None]], Awaitable[T]],
    *,
    migrate: bool,
) -> T:
    """Open the named plugins' stores, run ``work`` with them, always dispose them."""
    stores: dict[str, Store | None] = {}
    try:
        for name in names:
            stores[name] = await open_store(config, classes, name, migrate=migrate)
        return await work(stores)
    finally:
        for store in stores.values():
            if store is not None:
                await store.dispose()
