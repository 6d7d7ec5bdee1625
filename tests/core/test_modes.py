"""Node modes: set through the bus, published, alerted, persisted across restarts."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from corec.core import channels
from corec.core.config import BusSettings, CorecConfig, NodeSettings
from corec.core.errors import InvalidInput, RequestFailed
from corec.core.notices import (
    NODE_SET_MODE,
    NODE_STATUS,
    Alert,
    ModeChanged,
    NodeStatus,
    NodeStatusRequest,
    SetModeRequest,
)
from corec.core.nucleus import Node
from corec.core.plugin import Plugin, PluginContext, PluginHealth


class Watcher(Plugin):
    """Records ctx.mode at start and reports a health detail."""

    name = "watcher"
    seen: list[str] = []

    async def start(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        Watcher.seen.append(ctx.mode)

    def health(self) -> PluginHealth:
        return PluginHealth(status="degraded", details={"bars": 3})


def config(data_dir: Path) -> CorecConfig:
    return CorecConfig(
        source="test",
        node=NodeSettings(data_dir=data_dir, instance_id="t1"),
        bus=BusSettings(),
        sections={"watcher": Watcher.Config()},
    )


async def started(data_dir: Path) -> tuple[Node, list[Any]]:
    node = Node(config(data_dir), {"watcher": Watcher})
    seen: list[Any] = []
    for channel in (channels.SYSTEM, channels.ALERTS):
        node.bus.subscribe(channel, lambda e: seen.append(e.payload), group=f"t-{channel}")
    await node.start()
    return node, seen


async def test_set_mode_publishes_alerts_and_survives_a_restart(tmp_path: Path) -> None:
    Watcher.seen = []
    node, seen = await started(tmp_path)
    try:
        assert node.mode == "normal" and Watcher.seen == ["normal"]
        reply = await node.bus.request(
            NODE_SET_MODE,
            SetModeRequest(mode="emergency", reason="exchange hacked", by="ann"),
            timeout_s=2,
        )
        assert isinstance(reply, ModeChanged)
        assert (reply.previous, reply.current, reply.by) == ("normal", "emergency", "ann")
        assert node.plugin("watcher").ctx.mode == "emergency"  # type: ignore[attr-defined]
        changes = [p for p in seen if isinstance(p, ModeChanged)]
        assert changes == [reply]
        alerts = [p for p in seen if isinstance(p, Alert)]
        assert [(a.name, a.severity, a.labels, a.state, a.resolvable) for a in alerts] == [
            ("mode_changed", "critical", {"mode": "emergency"}, "firing", True)
        ]
        # the same mode again: nothing published
        again = await node.set_mode("emergency", reason="still", by="bob")
        assert again.previous == again.current == "emergency"
        assert len([p for p in seen if isinstance(p, ModeChanged)]) == 1
        # safe: the emergency alert is resolved, a high one fires
        await node.set_mode("safe", reason="calmer", by="ann")
        alerts = [p for p in seen if isinstance(p, Alert)][1:]
        assert [(a.severity, a.labels["mode"], a.state) for a in alerts] == [
            ("critical", "emergency", "resolved"),
            ("high", "safe", "firing"),
        ]
        status = await node.bus.request(NODE_STATUS, NodeStatusRequest(), timeout_s=2)
        assert isinstance(status, NodeStatus)
        assert status.mode == "safe" and status.instance_id == "t1"
        assert status.mode_since_ts_ns == node.mode_since_ts_ns
        assert isinstance(status.uptime_s, Decimal) and status.uptime_s >= 0
        [plugin] = status.plugins
        assert (plugin.name, plugin.state, plugin.status, plugin.details) == (
            "watcher",
            "running",
            "degraded",
            {"bars": 3},
        )
    finally:
        await node.stop()
        await node.close()

    node, _ = await started(tmp_path)  # restart: a halt or a safe mode survives
    try:
        assert node.mode == "safe" and Watcher.seen[-1] == "safe"
    finally:
        await node.stop()
        await node.close()


async def test_bad_mode_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    node, seen = await started(tmp_path)
    try:
        with pytest.raises(InvalidInput, match="mode must be one of"):
            await node.set_mode("halted", reason="x", by="ann")  # type: ignore[arg-type]
        with pytest.raises(RequestFailed):
            await node.bus.request(NODE_SET_MODE, NodeStatusRequest(), timeout_s=2)
        with pytest.raises(ValueError, match="reason must not be empty"):
            SetModeRequest(mode="safe", reason=" ", by="ann")
        assert node.mode == "normal" and not node.mode_file.exists()
        assert not [p for p in seen if isinstance(p, ModeChanged)]
    finally:
        await node.stop()
        await node.close()


async def test_an_unreadable_mode_file_starts_in_emergency(tmp_path: Path) -> None:
    (tmp_path / "node-mode.json").write_text("{not json")
    node, _ = await started(tmp_path)
    try:
        assert node.mode == "emergency"
    finally:
        await node.stop()
        await node.close()
