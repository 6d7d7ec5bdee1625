"""A real node serving the API on a loopback port, with users and a replayed slice.

``stack`` (SQLite and PostgreSQL): api, user_management, capital_pool, alert_manager,
daily_settlement, exchange_sync (a slice of the real recording), market_monitor,
trading_execution and macro_sync, the node running. Users: ``root`` (admin),
``alice`` (member, linked to pool member alice), ``vic`` (viewer), each with an API
token; ``alice`` also has the password ``alice-password-1``. Pool: alice 1,000 USD and
bob 500 USD contributed through the API before the replay starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from corec.core.nucleus import Node
from corec.core.registry import discover_plugins
from tests.conftest import fresh_pg_database, write_recording_slice

PLUGINS = [
    "api",
    "user_management",
    "capital_pool",
    "alert_manager",
    "daily_settlement",
    "exchange_sync",
    "market_monitor",
    "trading_execution",
    "macro_sync",
]
STORED = ("user_management", "capital_pool", "alert_manager", "daily_settlement")
SLICE_ROWS = 1800  # 30 hours of one-minute bars: trades, one settled day
ALICE_PASSWORD = "alice-password-1"


@dataclass
class Stack:
    """The running node and how to reach it."""

    node: Node
    base_url: str
    tokens: dict[str, str]
    backend: str
    run_task: asyncio.Task[Any] | None = None
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/ws"

    def client(self, user: str | None = None) -> httpx.AsyncClient:
        """An HTTP client for the API, authenticated as ``user`` (None: no token)."""
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        client = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=20)
        self.clients.append(client)
        return client

    async def wait_replayed(self, timeout_s: float = 60) -> None:
        """Until exchange_sync has published every bar of the slice."""
        for _ in range(int(timeout_s * 20)):
            health = self.node.health()["plugins"]["exchange_sync"]
            if health.get("bars_processed", 0) >= SLICE_ROWS:
                await asyncio.sleep(0.2)  # let the last results settle into the pool
                return
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"replay did not finish: {self.node.health()['plugins']['exchange_sync']}"
        )


def stack_config(tmp_path: Path, urls: dict[str, str]) -> Any:
    import yaml

    from corec.core.config import load_config

    recording = write_recording_slice(tmp_path / "slice.csv", SLICE_ROWS)
    data: dict[str, Any] = {
        "node": {"data_dir": str(tmp_path / "var"), "plugins": PLUGINS, "clock": "replay"},
        "api": {"port": 0},
        "exchange_sync": {
            "source": "replay",
            "replay": {
                "path": str(recording),
                "exchange": "ftx",
                "market": "futures",
                "symbol": "BTC/USD:USD",
                "volume_unit": "quote",
                "speed": "max",
                "stop_at_end": False,
            },
        },
        "trading_execution": {
            "mode": "paper",
            "strategies": [
                {
                    "name": "sma_cross",
                    "exchange": "ftx",
                    "market": "futures",
                    "symbol": "BTC/USD:USD",
                    "fast": 5,
                    "slow": 20,
                    "stop_loss_pct": 2,
                    "sides": "long_short",
                }
            ],
        },
    }
    for name, url in urls.items():
        data.setdefault(name, {})["database_url"] = url
    path = tmp_path / "corec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    classes = discover_plugins()
    return load_config(path, {n: c.Config for n, c in classes.items()}, env={})


async def _make_stack(tmp_path: Path, backend: str, urls: dict[str, str]) -> AsyncIterator[Stack]:
    node = Node(stack_config(tmp_path, urls), discover_plugins())
    await node.start()
    users = node.plugin("user_management").service  # type: ignore[attr-defined]
    await users.add_user("root", "admin")
    await users.add_user("alice", "member", member="alice", password=ALICE_PASSWORD)
    await users.add_user("vic", "viewer")
    tokens = {name: (await users.create_api_token(name)).token for name in ("root", "alice", "vic")}
    port = node.plugin("api").port  # type: ignore[attr-defined]
    stack = Stack(node=node, base_url=f"http://127.0.0.1:{port}", tokens=tokens, backend=backend)
    admin = stack.client("root")
    for member, amount in (("alice", "1000"), ("bob", "500")):
        reply = await admin.post(
            "/api/v1/contributions",
            json={"member": member, "amount_usd": amount, "id": f"seed-{member}"},
        )
        assert reply.status_code == 201, reply.text
    stack.run_task = asyncio.create_task(node.run(handle_signals=False))
    try:
        yield stack
    finally:
        for client in stack.clients:
            await client.aclose()
        node.request_shutdown("test over")
        if stack.run_task is not None:
            await asyncio.wait_for(stack.run_task, timeout=30)
        await node.stop()
        await node.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    """The API node on SQLite files, and on fresh PostgreSQL databases."""
    if request.param == "sqlite":
        async for s in _make_stack(tmp_path, "sqlite", {}):
            yield s
        return
    urls: dict[str, str] = {}
    managers = [fresh_pg_database() for _ in STORED]
    try:
        for name, manager in zip(STORED, managers, strict=True):
            urls[name] = await manager.__aenter__()
        async for s in _make_stack(tmp_path, "postgresql", urls):
            yield s
    finally:
        for manager in reversed(managers[: len(urls)]):
            await manager.__aexit__(None, None, None)


@pytest.fixture
async def sqlite_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The API node on SQLite only (for tests whose subject is not the store)."""
    async for s in _make_stack(tmp_path, "sqlite", {}):
        yield s
