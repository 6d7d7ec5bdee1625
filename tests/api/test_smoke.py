"""The stack fixture itself: the node serves, the replay trades, the users work."""

from __future__ import annotations

from tests.api.conftest import Stack


async def test_stack_serves_the_pool_after_the_replay(stack: Stack) -> None:
    await stack.wait_replayed()
    pool = (await stack.client("vic").get("/api/v1/pool")).json()
    assert pool["units"] == "1500.00000000"
    trades = (await stack.client("vic").get("/api/v1/trades")).json()
    assert trades["total"] > 0
