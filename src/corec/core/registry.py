"""Plugin discovery through the entry-point group ``corec.plugins``."""

from __future__ import annotations

from importlib.metadata import entry_points

from corec.core.errors import PluginError
from corec.core.plugin import Plugin

ENTRY_POINT_GROUP = "corec.plugins"


def discover_plugins() -> dict[str, type[Plugin]]:
    """Every installed plugin class by name, sorted by name.

    Raises:
        PluginError: an entry point cannot be loaded, is not a :class:`Plugin`
            subclass, or its ``name`` differs from the entry point's name.
    """
    found: dict[str, type[Plugin]] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            cls = ep.load()
        except Exception as exc:
            raise PluginError(f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Plugin)):
            raise PluginError(f"plugin {ep.name!r} ({ep.value}) is not a corec Plugin subclass")
        if cls.name != ep.name:
            raise PluginError(
                f"plugin {ep.value} is named {cls.name!r} but registered as {ep.name!r}"
            )
        found[ep.name] = cls
    return found
