"""The WebSocket stream ``/ws`` against a running node (protocol: :mod:`corec.api.stream`).

Authentication (close 4401), the subscribe protocol and its errors, events from REST
calls arriving on ``pool`` / ``system`` / ``alerts``, filtering by role, and a slow
client dropped (close 4008) while a fast one on the same stream receives every event.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from corec.core import channels
from corec.core.events import make_event
from corec.messages.market_data import MarketSnapshot
from tests.api.conftest import Stack

Message = dict[str, Any]
TIMEOUT_S = 20
TEST_EXCHANGE = "wstest"  # an instrument no strategy trades: these snapshots move nothing


@asynccontextmanager
async def ws(
    stack: Stack, user: str | None, *, token: str | None = None, **kwargs: Any
) -> AsyncIterator[ClientConnection]:
    """A WebSocket client, authenticated as ``user`` (or with ``token``; neither: none)."""
    token = token if token is not None else (stack.tokens[user] if user else None)
    url = stack.ws_url + (f"?token={token}" if token is not None else "")
    async with connect(url, proxy=None, open_timeout=TIMEOUT_S, **kwargs) as conn:
        yield conn


async def recv(conn: ClientConnection, timeout_s: float = TIMEOUT_S) -> Message:
    """The next message, decoded."""
    message: Message = json.loads(await asyncio.wait_for(conn.recv(), timeout_s))
    return message


async def until(
    conn: ClientConnection, match: Callable[[Message], bool], timeout_s: float = TIMEOUT_S
) -> tuple[list[Message], Message]:
    """``(messages before, the first message matching)``."""
    seen: list[Message] = []
    async with asyncio.timeout(timeout_s):
        while True:
            message = await recv(conn)
            if match(message):
                return seen, message
            seen.append(message)


async def subscribe(conn: ClientConnection, *streams: str) -> Message:
    await conn.send(json.dumps({"op": "subscribe", "channels": list(streams)}))
    _, reply = await until(conn, lambda m: m["type"] != "event")
    return reply


def is_event(event_type: str, **payload: Any) -> Callable[[Message], bool]:
    def match(m: Message) -> bool:
        return (
            m["type"] == "event"
            and m["event_type"] == event_type
            and all(m["payload"].get(k) == v for k, v in payload.items())
        )

    return match


async def close_code(conn: ClientConnection) -> int | None:
    """Read until the server closes; the close code it sent."""
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(TIMEOUT_S):
            while True:
                await conn.recv()
    return closed.value.rcvd.code if closed.value.rcvd else None


def snapshot(seq: int) -> MarketSnapshot:
    price = Decimal(100) + Decimal(seq % 100)
    return MarketSnapshot(
        exchange=TEST_EXCHANGE,
        market="spot",
        symbol="ZZZ/USD",
        bid=price,
        ask=price,
        last=price,
        mid=price,
        price=price,
        spread_bps=Decimal(0),
        return_pct=None,
        window_s=60,
        exchange_ts_ns=seq,
    )


async def contribute(stack: Stack, member: str, amount: str, fid: str) -> Message:
    reply = await stack.client("root").post(
        "/api/v1/contributions", json={"member": member, "amount_usd": amount, "id": fid}
    )
    assert reply.status_code == 201, reply.text
    body: Message = reply.json()
    return body


async def set_mode(stack: Stack, mode: str, reason: str) -> None:
    reply = await stack.client("root").put(
        "/api/v1/system/mode", json={"mode": mode, "reason": reason}
    )
    assert reply.status_code == 200, reply.text


# -- authentication -----------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "not-a-token", "corec_0123456789abcdef"])
async def test_a_missing_or_bad_token_is_closed_with_4401(
    sqlite_stack: Stack, token: str | None
) -> None:
    async with ws(sqlite_stack, None, token=token) as conn:
        assert await close_code(conn) == 4401
    assert len(sqlite_stack.node.plugin("api").hub.clients) == 0  # type: ignore[attr-defined]


async def test_an_access_token_from_login_is_accepted(sqlite_stack: Stack) -> None:
    login = await sqlite_stack.client().post(
        "/api/v1/auth/login", json={"user": "alice", "password": "alice-password-1"}
    )
    assert login.status_code == 200, login.text
    async with ws(sqlite_stack, None, token=login.json()["access_token"]) as conn:
        assert await subscribe(conn, "pool") == {"type": "subscribed", "channels": ["pool"]}


# -- the protocol -------------------------------------------------------------------------


async def test_subscribe_unsubscribe_and_bad_messages_keep_the_socket_open(
    sqlite_stack: Stack,
) -> None:
    async with ws(sqlite_stack, "vic") as conn:
        assert await subscribe(conn, "prices", "system") == {
            "type": "subscribed",
            "channels": ["prices", "system"],
        }
        assert await subscribe(conn, "pool") == {
            "type": "subscribed",
            "channels": ["pool", "prices", "system"],
        }
        await conn.send(json.dumps({"op": "unsubscribe", "channels": ["prices", "system"]}))
        _, reply = await until(conn, lambda m: m["type"] != "event")
        assert reply == {"type": "subscribed", "channels": ["pool"]}

        bad = [
            (json.dumps({"op": "subscribe", "channels": ["nope"]}), "unknown channel(s) ['nope']"),
            ("{not json", "not JSON"),
            (json.dumps(["subscribe"]), "a message must be a JSON object"),
            (json.dumps({"op": "publish", "channels": ["pool"]}), "op must be"),
            (json.dumps({"op": "subscribe", "channels": "pool"}), "channels must be a list"),
        ]
        for text, detail in bad:
            await conn.send(text)
            _, error = await until(conn, lambda m: m["type"] != "event")
            assert error["type"] == "error", (text, error)
            assert detail in error["detail"], (text, error)
        # still open, and still subscribed to `pool` only
        assert await subscribe(conn, "alerts") == {
            "type": "subscribed",
            "channels": ["alerts", "pool"],
        }


async def test_a_binary_frame_is_an_error_and_the_socket_stays_open(sqlite_stack: Stack) -> None:
    """The protocol: a bad message gets ``{"type": "error"}`` and the socket stays open.
    A binary frame is a bad message (the protocol is JSON text)."""
    async with ws(sqlite_stack, "vic") as conn:
        await conn.send(b'{"op": "subscribe", "channels": ["pool"]}')
        reply = await recv(conn)
        assert reply["type"] == "error", reply
        assert "binary" in reply["detail"]
        assert await subscribe(conn, "system") == {"type": "subscribed", "channels": ["system"]}


# -- events -------------------------------------------------------------------------------


async def test_rest_calls_arrive_as_events_for_an_admin(sqlite_stack: Stack) -> None:
    async with ws(sqlite_stack, "root") as conn:
        assert (await subscribe(conn, "pool", "alerts", "system"))["channels"] == [
            "alerts",
            "pool",
            "system",
        ]
        record = await contribute(sqlite_stack, "alice", "250.50", "ws-admin-1")
        _, event = await until(
            conn, is_event("contribution_recorded", contribution_id="ws-admin-1")
        )
        assert event["stream"] == "pool"
        assert event["channel"] == "capital_data"
        assert isinstance(event["id"], str) and event["id"]
        assert isinstance(event["ts_ns"], int) and event["ts_ns"] > 0
        assert event["payload"]["member"] == "alice"
        assert event["payload"]["amount_usd"] == "250.50"
        assert event["payload"]["units"] == record["units"]
        assert event["payload"]["nav_per_unit"] == record["nav_per_unit"]
        assert isinstance(event["payload"]["units"], str)
        _, state = await until(conn, is_event("pool_state"))
        assert state["stream"] == "pool"
        assert isinstance(state["payload"]["nav_usd"], str)
        assert Decimal(state["payload"]["units"]) >= Decimal("1500") + Decimal(record["units"])

        await set_mode(sqlite_stack, "safe", "ws test")
        _, changed = await until(conn, is_event("mode_changed"))
        assert changed["stream"] == "system"
        assert changed["channel"] == "system"
        assert {k: changed["payload"][k] for k in ("previous", "current", "reason", "by")} == {
            "previous": "normal",
            "current": "safe",
            "reason": "ws test",
            "by": "root",
        }
        _, alert = await until(conn, is_event("alert_recorded", name="mode_changed"))
        assert alert["stream"] == "alerts"
        assert alert["channel"] == "alert_data"
        assert alert["payload"]["labels"] == {"mode": "safe"}
        assert alert["payload"]["severity"] == "high"


async def test_a_viewer_sees_the_pool_figures_but_no_members_flows(sqlite_stack: Stack) -> None:
    async with ws(sqlite_stack, "vic") as conn:
        await subscribe(conn, "pool", "system")
        await contribute(sqlite_stack, "alice", "100", "ws-vic-alice")
        await contribute(sqlite_stack, "bob", "200", "ws-vic-bob")
        # the mode change comes after both contributions were published: everything of
        # theirs that the viewer may see is queued before it
        await set_mode(sqlite_stack, "safe", "marker")
        seen, _ = await until(conn, is_event("mode_changed"))
    pool = [m for m in seen if m["type"] == "event" and m["stream"] == "pool"]
    assert {m["event_type"] for m in pool} <= {"pool_state", "phase_changed"}, pool
    assert sum(1 for m in pool if m["event_type"] == "pool_state") >= 2
    assert not [m for m in pool if "member" in m["payload"]]


async def test_a_member_sees_their_own_flows_only(sqlite_stack: Stack) -> None:
    async with ws(sqlite_stack, "alice") as conn:
        await subscribe(conn, "pool", "system")
        await contribute(sqlite_stack, "bob", "200", "ws-m-bob")
        await contribute(sqlite_stack, "alice", "100", "ws-m-alice")
        await set_mode(sqlite_stack, "safe", "marker")
        seen, _ = await until(conn, is_event("mode_changed"))
    pool = [m for m in seen if m["type"] == "event" and m["stream"] == "pool"]
    flows = [m for m in pool if "member" in m["payload"]]
    assert [(m["event_type"], m["payload"]["contribution_id"]) for m in flows] == [
        ("contribution_recorded", "ws-m-alice")
    ]
    assert flows[0]["payload"]["amount_usd"] == "100"
    assert sum(1 for m in pool if m["event_type"] == "pool_state") >= 2
    assert {m["payload"].get("member", "alice") for m in pool} == {"alice"}


# -- backpressure -------------------------------------------------------------------------


async def test_a_slow_client_is_dropped_and_a_fast_one_gets_everything(
    sqlite_stack: Stack,
) -> None:
    """The slow client never reads (a tiny receive buffer and max_queue=1, so TCP
    backpressure reaches the server at once); events are published on the node's bus
    until the hub drops it, then 500 more. The fast client, in this same event loop,
    reads all the time; the publisher lets it keep within 200 events of the bus (a
    fast client), never waiting on the slow one."""
    stack = sqlite_stack
    await stack.wait_replayed()  # the replay's own market data is over
    hub = stack.node.plugin("api").hub  # type: ignore[attr-defined]
    node, bus = stack.node, stack.node.bus
    parts = urlsplit(stack.base_url)
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, (parts.hostname, parts.port))

    published = 0
    received: list[int] = []
    progress = asyncio.Event()  # set at each event the fast client receives

    async def fast_within(lag: int) -> None:
        while published - len(received) > lag:
            progress.clear()
            await progress.wait()

    async def read_fast(conn: ClientConnection) -> None:
        async for text in conn:
            message = json.loads(text)
            if message["type"] == "event" and message["payload"].get("exchange") == TEST_EXCHANGE:
                received.append(message["payload"]["exchange_ts_ns"])
                progress.set()

    async with (
        ws(stack, "vic", sock=raw, max_queue=1, compression=None, ping_interval=None) as slow,
        ws(stack, "vic") as fast,
    ):
        assert (await subscribe(slow, "prices"))["type"] == "subscribed"
        assert (await subscribe(fast, "prices"))["type"] == "subscribed"
        reader = asyncio.create_task(read_fast(fast))
        extra = 500
        dropped_at: int | None = None
        async with asyncio.timeout(90):
            while dropped_at is None or published < dropped_at + extra:
                published += 1
                await bus.publish(
                    make_event(
                        channels.MARKET_DATA, snapshot(published), source="test", clock=node.clock
                    )
                )
                if dropped_at is None and hub.dropped_clients:
                    dropped_at = published
                await fast_within(200)
                assert published < 200_000, "the slow client was never dropped"
            await fast_within(0)
        reader.cancel()
        assert received == list(range(1, published + 1))  # every event, in order, once
        assert hub.dropped_clients == 1
        assert len(hub.clients) == 1  # the fast one
        assert node.health()["plugins"]["api"]["ws_clients_dropped"] == 1

        # the slow client reads at last: what was under way, then why, then 4008
        tail: list[Message] = []
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(TIMEOUT_S):
                while True:
                    tail.append(json.loads(await slow.recv()))
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4008
        assert tail[-1] == {
            "type": "dropped",
            "reason": "too slow: more than 1000 events waiting",
        }
        seqs = [m["payload"]["exchange_ts_ns"] for m in tail[:-1]]
        assert seqs == list(range(1, len(seqs) + 1))  # a prefix, in order
        assert len(seqs) < dropped_at
