"""The bus: interface, backends and the factory that picks one from configuration."""

from __future__ import annotations

from corec.core.bus.base import Bus, BusStats, Handler, Responder, Subscription
from corec.core.bus.memory import MemoryBus
from corec.core.clock import Clock


def create_bus(backend: str, *, clock: Clock, instance_id: str) -> Bus:
    """A bus for ``backend`` (``"memory"``).

    Raises:
        ValueError: unknown backend name.
    """
    if backend == "memory":
        return MemoryBus(clock=clock, instance_id=instance_id)
    raise ValueError(f"unknown bus backend {backend!r}; expected 'memory'")


__all__ = ["Bus", "BusStats", "Handler", "MemoryBus", "Responder", "Subscription", "create_bus"]
