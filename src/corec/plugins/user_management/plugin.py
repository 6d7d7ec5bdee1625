"""The ``user_management`` plugin (being built)."""

from __future__ import annotations

from corec.core.plugin import Plugin, PluginContext


class UserManagementPlugin(Plugin):
    """Users, roles and tokens (being built)."""

    name = "user_management"

    async def start(self, ctx: PluginContext) -> None:
        """Nothing yet."""
