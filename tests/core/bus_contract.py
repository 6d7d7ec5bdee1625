"""The shared test suite of the bus: every backend subclasses :class:`BusContract`.

A backend's test module defines a class ``TestXxxBus(BusContract)`` that overrides the
``make_bus`` fixture with a factory of *unstarted* buses of that backend (and cleans up
whatever the backend needs afterwards). The suite starts and closes the bus itself.

Delivery may be asynchronous (Redis Streams delivers from a reader task), so every
positive check waits with :meth:`BusContract.eventually`; a negative check ("this
handler got nothing") first waits until a witness subscriber in another group has
received the same event.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any, ClassVar

import pytest

from corec.core import channels
from corec.core.bus import Bus
from corec.core.clock import ReplayClock
from corec.core.errors import BusError, NoResponder, RequestFailed, RequestTimeout
from corec.core.events import Event, Payload, make_event
from corec.core.notices import Alert, DeadLetter
from corec.messages.capital_data import AllocationGranted, AllocationRequest
from corec.messages.exchange_data import Ticker, TickerBatch

MakeBus = Callable[[], Bus]
"""``make_bus() -> Bus``: a new, unstarted bus of the backend under test."""

ENDPOINT = "test.allocate"
CLOCK = ReplayClock(1_641_000_000_000_000_000)


def ticker_event(n: int, *, channel: str = channels.EXCHANGE_DATA) -> Event:
    """An ``exchange_data`` event with one real-looking ticker; ``n`` moves the prices."""
    ticker = Ticker(
        exchange="binance",
        market="spot",
        symbol="BTC/USDT",
        bid=Decimal("46377.12345678") + n,
        ask=Decimal("46377.50000000") + n,
        last=Decimal("46377.3") + n,
        base_volume=Decimal("1234.56789"),
        exchange_ts_ns=1_641_000_000_000_000_000 + n,
        received_ts_ns=1_641_000_000_100_000_000 + n,
    )
    return make_event(
        channel,
        TickerBatch(tickers=(ticker,)),
        source="exchange_sync@test",
        clock=CLOCK,
        key=f"batch-{n}",
    )


def allocation_request() -> AllocationRequest:
    return AllocationRequest(
        strategy="sma_cross",
        exchange="binance",
        market="spot",
        symbol="BTC/USDT",
        side="long",
        stop_loss_pct=Decimal("2.5"),
    )


class Recorder:
    """Handlers that remember what they received, by name."""

    def __init__(self) -> None:
        self.got: dict[str, list[Event]] = {}

    def sync(self, name: str) -> Callable[[Event], None]:
        self.got.setdefault(name, [])

        def handler(event: Event) -> None:
            self.got[name].append(event)

        return handler

    def async_(self, name: str) -> Callable[[Event], Any]:
        self.got.setdefault(name, [])

        async def handler(event: Event) -> None:
            await asyncio.sleep(0)
            self.got[name].append(event)

        return handler

    def failing(self, name: str, error: Exception) -> Callable[[Event], Any]:
        self.got.setdefault(name, [])

        async def handler(event: Event) -> None:
            self.got[name].append(event)
            raise error

        return handler

    def ids(self, name: str) -> list[str]:
        return [e.id for e in self.got[name]]


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {key: value for key, value in counts.items() if value}


class BusContract:
    """Behaviour every bus backend keeps (see :mod:`corec.core.bus.base`)."""

    delivery_timeout_s: ClassVar[float] = 5.0

    @pytest.fixture
    def make_bus(self) -> MakeBus:
        raise NotImplementedError("a backend's test class overrides the make_bus fixture")

    @pytest.fixture
    async def bus(self, make_bus: MakeBus) -> AsyncIterator[Bus]:
        bus = make_bus()
        await bus.start()
        try:
            yield bus
        finally:
            await bus.close()

    async def eventually(self, predicate: Callable[[], bool], what: str) -> None:
        """Wait until ``predicate()`` holds; fail after :attr:`delivery_timeout_s`."""
        deadline = time.monotonic() + self.delivery_timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                pytest.fail(f"not within {self.delivery_timeout_s} s: {what}")
            await asyncio.sleep(0.005)

    # -- publish / subscribe ---------------------------------------------------------
    async def test_publish_reaches_every_group(self, bus: Bus) -> None:
        rec = Recorder()
        for group in ("market_monitor", "alert_manager", "recorder"):
            bus.subscribe(channels.EXCHANGE_DATA, rec.sync(group), group=group)
        events = [ticker_event(1), ticker_event(2)]
        for event in events:
            await bus.publish(event)
        await self.eventually(
            lambda: all(len(v) == 2 for v in rec.got.values()), "every group got both"
        )
        for group in ("market_monitor", "alert_manager", "recorder"):
            assert rec.got[group] == events, group

    async def test_handler_receives_the_event_as_published(self, bus: Bus) -> None:
        rec = Recorder()
        bus.subscribe(channels.EXCHANGE_DATA, rec.sync("market_monitor"), group="market_monitor")
        event = ticker_event(7)
        await bus.publish(event)
        await self.eventually(lambda: len(rec.got["market_monitor"]) == 1, "delivered")
        got = rec.got["market_monitor"][0]
        assert got == event
        assert (got.id, got.channel, got.type, got.ts_ns, got.source, got.key) == (
            event.id,
            "exchange_data",
            "ticker_batch",
            1_641_000_000_000_000_000,
            "exchange_sync@test",
            "batch-7",
        )
        ticker = got.payload.tickers[0]
        assert str(ticker.bid) == "46384.12345678"
        assert str(ticker.ask) == "46384.50000000"

    async def test_each_event_goes_to_one_handler_of_a_group(self, bus: Bus) -> None:
        rec = Recorder()
        bus.subscribe(channels.EXCHANGE_DATA, rec.sync("worker_a"), group="workers")
        bus.subscribe(channels.EXCHANGE_DATA, rec.async_("worker_b"), group="workers")
        bus.subscribe(channels.EXCHANGE_DATA, rec.sync("audit"), group="audit")
        events = [ticker_event(n) for n in range(6)]
        for event in events:
            await bus.publish(event)
        await self.eventually(lambda: len(rec.got["audit"]) == 6, "audit got all six")
        await self.eventually(
            lambda: len(rec.got["worker_a"]) + len(rec.got["worker_b"]) >= 6,
            "the workers got all six between them",
        )
        a, b = rec.ids("worker_a"), rec.ids("worker_b")
        assert sorted(a + b) == sorted(e.id for e in events)  # each exactly once
        assert not set(a) & set(b)
        assert rec.ids("audit") == [e.id for e in events]

    async def test_sync_and_async_handlers(self, bus: Bus) -> None:
        rec = Recorder()
        bus.subscribe(channels.EXCHANGE_DATA, rec.sync("plain"), group="plain")
        bus.subscribe(channels.EXCHANGE_DATA, rec.async_("coroutine"), group="coroutine")
        event = ticker_event(3)
        await bus.publish(event)
        await self.eventually(
            lambda: len(rec.got["plain"]) == 1 and len(rec.got["coroutine"]) == 1, "both ran"
        )
        assert rec.got["plain"] == [event]
        assert rec.got["coroutine"] == [event]

    async def test_channels_are_separate(self, bus: Bus) -> None:
        rec = Recorder()
        bus.subscribe(channels.EXCHANGE_DATA, rec.sync("exchange"), group="g")
        bus.subscribe(channels.MARKET_DATA, rec.sync("market"), group="g")
        on_market = ticker_event(1, channel=channels.MARKET_DATA)
        await bus.publish(on_market)
        await self.eventually(lambda: len(rec.got["market"]) == 1, "market_data delivered")
        witness = ticker_event(2)
        await bus.publish(witness)
        await self.eventually(lambda: len(rec.got["exchange"]) == 1, "exchange_data delivered")
        assert rec.got["exchange"] == [witness]
        assert rec.got["market"] == [on_market]

    async def test_cancel_stops_delivery(self, bus: Bus) -> None:
        rec = Recorder()
        sub = bus.subscribe(channels.EXCHANGE_DATA, rec.sync("cancelled"), group="cancelled")
        bus.subscribe(channels.EXCHANGE_DATA, rec.sync("witness"), group="witness")
        first, second = ticker_event(1), ticker_event(2)
        await bus.publish(first)
        await self.eventually(lambda: len(rec.got["cancelled"]) == 1, "delivered before cancel")
        sub.cancel()
        sub.cancel()  # idempotent
        await bus.publish(second)
        await self.eventually(lambda: len(rec.got["witness"]) == 2, "witness got both")
        assert rec.got["cancelled"] == [first]
        assert rec.got["witness"] == [first, second]

    async def test_cancel_one_member_of_a_group_keeps_the_others(self, bus: Bus) -> None:
        rec = Recorder()
        leaving = bus.subscribe(channels.EXCHANGE_DATA, rec.sync("leaving"), group="workers")
        bus.subscribe(channels.EXCHANGE_DATA, rec.sync("staying"), group="workers")
        leaving.cancel()
        events = [ticker_event(n) for n in range(3)]
        for event in events:
            await bus.publish(event)
        await self.eventually(lambda: len(rec.got["staying"]) == 3, "the remaining member")
        assert rec.got["staying"] == events
        assert rec.got["leaving"] == []

    # -- failures --------------------------------------------------------------------
    async def test_failing_handler_does_not_stop_the_others(self, bus: Bus) -> None:
        rec = Recorder()
        bus.subscribe(
            channels.EXCHANGE_DATA, rec.failing("broken", ValueError("boom")), group="broken"
        )
        bus.subscribe(channels.EXCHANGE_DATA, rec.sync("healthy"), group="healthy")
        events = [ticker_event(1), ticker_event(2)]
        for event in events:
            await bus.publish(event)
        await self.eventually(lambda: len(rec.got["healthy"]) == 2, "healthy got both")
        assert rec.got["healthy"] == events
        assert rec.got["broken"] == events

    async def test_failed_event_goes_to_dead_letter_with_an_alert(self, bus: Bus) -> None:
        rec = Recorder()
        bus.subscribe(
            channels.EXCHANGE_DATA,
            rec.failing("market_monitor", ValueError("bid above ask")),
            group="market_monitor",
        )
        bus.subscribe(channels.EXCHANGE_DATA, rec.sync("recorder"), group="recorder")
        bus.subscribe(channels.DEAD_LETTER, rec.sync("dead"), group="watch")
        bus.subscribe(channels.ALERTS, rec.sync("alerts"), group="alert_manager")
        event = ticker_event(5)
        await bus.publish(event)
        await self.eventually(
            lambda: len(rec.got["dead"]) == 1 and len(rec.got["alerts"]) == 1,
            "one dead letter and one alert",
        )

        dead = rec.got["dead"][0]
        assert (dead.channel, dead.type) == ("dead_letter", "dead_letter")
        letter = dead.payload
        assert isinstance(letter, DeadLetter)
        assert letter.channel == "exchange_data"
        assert letter.event_type == "ticker_batch"
        assert letter.event_id == event.id
        assert letter.handler == "market_monitor"
        assert letter.error_type == "ValueError"
        assert letter.error == "bid above ask"
        original = json.loads(letter.event_json)
        assert original["id"] == event.id
        assert original["channel"] == "exchange_data"
        assert original["key"] == "batch-5"
        assert original["payload"]["tickers"][0]["bid"] == "46382.12345678"

        alert_event = rec.got["alerts"][0]
        alert = alert_event.payload
        assert (alert_event.channel, alert_event.type) == ("alerts", "alert")
        assert isinstance(alert, Alert)
        assert alert.name == "dead_letter"
        assert alert.severity == "high"
        assert alert.labels == {"channel": "exchange_data", "handler": "market_monitor"}
        assert "market_monitor" in alert.message
        assert "ValueError: bid above ask" in alert.message

        await self.eventually(
            lambda: bus.stats.dead_letters.get("exchange_data") == 1, "counted as dead letter"
        )
        assert nonzero(bus.stats.dead_letters) == {"exchange_data": 1}
        assert rec.got["recorder"] == [event]

    async def test_failure_while_handling_dead_letter_does_not_loop(self, bus: Bus) -> None:
        rec = Recorder()
        bus.subscribe(
            channels.EXCHANGE_DATA, rec.failing("consumer", RuntimeError("first")), group="c"
        )
        rec.got["dead"] = []

        async def failing_a_few_times(event: Event) -> None:
            rec.got["dead"].append(event)
            if len(rec.got["dead"]) <= 3:  # bounded, so a loop shows as a count, not a hang
                raise RuntimeError("second")

        bus.subscribe(channels.DEAD_LETTER, failing_a_few_times, group="dead")
        bus.subscribe(channels.ALERTS, rec.sync("alerts"), group="alerts")
        await bus.publish(ticker_event(1))
        await self.eventually(
            lambda: bus.stats.dead_letters.get("dead_letter", 0) >= 1, "dead letter failure seen"
        )
        await self.eventually(lambda: len(rec.got["alerts"]) == 1, "the first failure's alert")
        await asyncio.sleep(0.05)  # a loop would keep publishing meanwhile
        assert len(rec.got["dead"]) == 1
        assert [a.payload.name for a in rec.got["alerts"]] == ["dead_letter"]
        assert rec.got["alerts"][0].payload.labels == {"channel": "exchange_data", "handler": "c"}
        assert nonzero(bus.stats.published) == {"exchange_data": 1, "dead_letter": 1, "alerts": 1}
        assert nonzero(bus.stats.dead_letters) == {"exchange_data": 1, "dead_letter": 1}

    async def test_failure_while_handling_an_alert_raises_no_new_alert(self, bus: Bus) -> None:
        rec = Recorder()
        bus.subscribe(channels.ALERTS, rec.failing("notifier", OSError("smtp down")), group="n")
        bus.subscribe(channels.DEAD_LETTER, rec.sync("dead"), group="watch")
        alert = Alert(name="price_move", message="BTC moved 5 %", severity="medium")
        await bus.publish(
            make_event(channels.ALERTS, alert, source="market_monitor@t", clock=CLOCK)
        )
        await self.eventually(lambda: len(rec.got["dead"]) == 1, "dead-lettered")
        await asyncio.sleep(0.05)
        assert rec.got["dead"][0].payload.error == "smtp down"
        assert rec.got["dead"][0].payload.error_type == "OSError"
        assert len(rec.got["notifier"]) == 1
        assert nonzero(bus.stats.published) == {"alerts": 1, "dead_letter": 1}

    # -- request / reply -------------------------------------------------------------
    async def test_request_returns_the_reply(self, bus: Bus) -> None:
        seen: list[Payload] = []

        async def allocate(payload: Payload) -> Payload:
            assert isinstance(payload, AllocationRequest)
            seen.append(payload)
            return AllocationGranted(
                allocation_id="alloc-1",
                strategy=payload.strategy,
                exchange=payload.exchange,
                market=payload.market,
                symbol=payload.symbol,
                side=payload.side,
                amount_usd=Decimal("123.45678901"),
                nav_usd=Decimal("10000.00"),
                risk_per_trade=Decimal("0.03"),
                reduced=False,
            )

        bus.serve(ENDPOINT, allocate)
        reply = await bus.request(ENDPOINT, allocation_request(), timeout_s=5)
        assert isinstance(reply, AllocationGranted)
        assert reply.allocation_id == "alloc-1"
        assert reply.symbol == "BTC/USDT"
        assert str(reply.amount_usd) == "123.45678901"
        assert seen == [allocation_request()]
        assert bus.stats.requests == {ENDPOINT: 1}
        assert nonzero(bus.stats.request_errors) == {}

    async def test_request_without_responder(self, bus: Bus) -> None:
        with pytest.raises(NoResponder, match=r"test\.nobody"):
            await bus.request("test.nobody", allocation_request(), timeout_s=1)

    async def test_unserve_removes_the_responder(self, bus: Bus) -> None:
        async def allocate(payload: Payload) -> Payload:
            return payload

        bus.serve(ENDPOINT, allocate)
        bus.unserve(ENDPOINT)
        bus.unserve(ENDPOINT)  # idempotent
        with pytest.raises(NoResponder):
            await bus.request(ENDPOINT, allocation_request(), timeout_s=1)
        bus.serve(ENDPOINT, allocate)  # free to serve again
        assert await bus.request(ENDPOINT, allocation_request(), timeout_s=5) == (
            allocation_request()
        )

    async def test_request_timeout(self, bus: Bus) -> None:
        async def slow(payload: Payload) -> Payload:
            await asyncio.sleep(30)
            return payload

        bus.serve(ENDPOINT, slow)
        started = time.monotonic()
        with pytest.raises(RequestTimeout, match=ENDPOINT):
            await bus.request(ENDPOINT, allocation_request(), timeout_s=0.05)
        assert time.monotonic() - started < 2
        assert nonzero(bus.stats.request_errors) == {ENDPOINT: 1}

    async def test_request_failed_keeps_the_cause(self, bus: Bus) -> None:
        async def broken(payload: Payload) -> Payload:
            raise ValueError("no free cash")

        bus.serve(ENDPOINT, broken)
        with pytest.raises(RequestFailed) as caught:
            await bus.request(ENDPOINT, allocation_request(), timeout_s=5)
        assert "ValueError: no free cash" in str(caught.value)
        assert isinstance(caught.value.__cause__, ValueError)
        assert str(caught.value.__cause__) == "no free cash"
        assert nonzero(bus.stats.request_errors) == {ENDPOINT: 1}

    async def test_serving_an_endpoint_twice_is_refused(self, bus: Bus) -> None:
        async def first(payload: Payload) -> Payload:
            return payload

        async def second(payload: Payload) -> Payload:
            raise AssertionError("the second responder must not be installed")

        bus.serve(ENDPOINT, first)
        with pytest.raises(BusError, match=ENDPOINT):
            bus.serve(ENDPOINT, second)
        assert await bus.request(ENDPOINT, allocation_request(), timeout_s=5) == (
            allocation_request()
        )

    # -- lifecycle and counters ------------------------------------------------------
    async def test_publish_after_close_is_refused(self, bus: Bus) -> None:
        rec = Recorder()
        bus.subscribe(channels.EXCHANGE_DATA, rec.sync("late"), group="late")
        await bus.close()
        with pytest.raises(BusError) as caught:
            await bus.publish(ticker_event(1))
        assert type(caught.value) is BusError
        assert rec.got["late"] == []

    async def test_stats_count_exactly(self, bus: Bus) -> None:
        rec = Recorder()
        bus.subscribe(channels.EXCHANGE_DATA, rec.sync("a"), group="workers")
        bus.subscribe(channels.EXCHANGE_DATA, rec.sync("b"), group="workers")
        bus.subscribe(channels.EXCHANGE_DATA, rec.sync("audit"), group="audit")
        for n in range(3):
            await bus.publish(ticker_event(n))
        for n in range(2):
            await bus.publish(ticker_event(n, channel=channels.MARKET_DATA))  # nobody listens

        async def allocate(payload: Payload) -> Payload:
            if isinstance(payload, AllocationRequest) and payload.side == "short":
                raise ValueError("long only")
            return payload

        bus.serve(ENDPOINT, allocate)
        await bus.request(ENDPOINT, allocation_request(), timeout_s=5)
        with pytest.raises(RequestFailed):
            short = AllocationRequest(
                strategy="sma_cross",
                exchange="binance",
                market="spot",
                symbol="BTC/USDT",
                side="short",
                stop_loss_pct=Decimal(2),
            )
            await bus.request(ENDPOINT, short, timeout_s=5)

        await self.eventually(
            lambda: bus.stats.delivered.get("exchange_data") == 6, "six deliveries counted"
        )
        stats = bus.stats.as_dict()
        assert {name: nonzero(counts) for name, counts in stats.items()} == {
            "published": {"exchange_data": 3, "market_data": 2},
            "delivered": {"exchange_data": 6},
            "dead_letters": {},
            "requests": {ENDPOINT: 2},
            "request_errors": {ENDPOINT: 1},
        }
        stats["published"]["exchange_data"] = 99  # as_dict is a copy
        assert bus.stats.published["exchange_data"] == 3
