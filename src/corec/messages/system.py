"""``system``: plugin lifecycle, breaker state changes, node shutdown."""

from corec.core.notices import (
    BreakerState,
    BreakerStateChanged,
    NodeShutdown,
    PluginState,
    PluginStateChanged,
)

__all__ = [
    "BreakerState",
    "BreakerStateChanged",
    "NodeShutdown",
    "PluginState",
    "PluginStateChanged",
]
