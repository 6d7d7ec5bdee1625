"""Test harness: run a real node (chosen plugins, real stores) and watch its channels."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import func, select

from corec.core.bus import Bus
from corec.core.config import CorecConfig
from corec.core.events import Event
from corec.core.nucleus import Node
from corec.core.registry import discover_plugins
from corec.core.store import Store


class Recorder:
    """Every event seen on the channels it listens to, in order."""

    def __init__(self, bus: Bus, *channels: str) -> None:
        self.events: list[Event] = []
        for channel in channels:
            bus.subscribe(channel, self.events.append, group=f"test-recorder-{channel}")

    def payloads(self, type_: type | None = None, *, channel: str | None = None) -> list[Any]:
        """Payloads seen, optionally only of one class and/or channel."""
        return [
            e.payload
            for e in self.events
            if (type_ is None or isinstance(e.payload, type_))
            and (channel is None or e.channel == channel)
        ]


@asynccontextmanager
async def started_node(config: CorecConfig, *channels: str) -> AsyncIterator[tuple[Node, Recorder]]:
    """A started node and a recorder of ``channels`` (subscribed before any plugin
    starts, so nothing published at start is missed); stopped and closed afterwards."""
    node = Node(config, discover_plugins())
    recorder = Recorder(node.bus, *channels)
    try:
        await node.start()
        yield node, recorder
    finally:
        await node.stop()
        await node.close()


async def count_rows(store: Store, table: Any) -> int:
    """Rows in ``table`` of ``store``."""
    query = select(func.count()).select_from(table)
    return int(await store.read(lambda conn: conn.execute(query).scalar_one()))
