"""The ``api`` plugin (being built)."""

from __future__ import annotations

from corec.core.plugin import Plugin, PluginConfig, PluginContext


class ApiConfig(PluginConfig):
    """The API's settings (being built)."""


class ApiPlugin(Plugin):
    """Serves the REST API, WebSocket and dashboard (being built)."""

    name = "api"
    Config = ApiConfig

    async def start(self, ctx: PluginContext) -> None:
        """Nothing yet."""
