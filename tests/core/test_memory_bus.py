"""The in-process ``memory`` bus: the shared contract, plus what only this backend does."""

from __future__ import annotations

from decimal import Decimal

import pytest

from corec.core import channels
from corec.core.bus import MemoryBus, create_bus
from corec.core.clock import ReplayClock
from corec.core.errors import RequestFailed
from corec.core.events import Event, Payload

from .bus_contract import ENDPOINT, BusContract, MakeBus, Recorder, allocation_request, ticker_event


class TestMemoryBus(BusContract):
    @pytest.fixture
    def make_bus(self) -> MakeBus:
        return lambda: MemoryBus(clock=ReplayClock(1_000), instance_id="test")


async def test_round_robin_within_a_group() -> None:
    bus = MemoryBus()
    rec = Recorder()
    for name in ("a", "b", "c"):
        bus.subscribe(channels.EXCHANGE_DATA, rec.sync(name), group="workers")
    events = [ticker_event(n) for n in range(7)]
    for event in events:
        await bus.publish(event)
    assert rec.got["a"] == [events[0], events[3], events[6]]
    assert rec.got["b"] == [events[1], events[4]]
    assert rec.got["c"] == [events[2], events[5]]


async def test_publish_calls_handlers_inline_in_subscription_order_with_the_same_object() -> None:
    bus = MemoryBus()
    order: list[str] = []
    received: list[Event] = []

    async def first(event: Event) -> None:
        order.append("first")
        received.append(event)

    def second(event: Event) -> None:
        order.append("second")

    bus.subscribe(channels.EXCHANGE_DATA, first, group="g1")
    bus.subscribe(channels.EXCHANGE_DATA, second, group="g2")
    event = ticker_event(1)
    await bus.publish(event)  # no waiting: delivery happened before publish returned
    assert order == ["first", "second"]
    assert received[0] is event


async def test_dead_letter_and_alert_are_stamped_by_the_bus() -> None:
    bus = MemoryBus(clock=ReplayClock(42_000_000_000), instance_id="node-7")
    rec = Recorder()
    bus.subscribe(channels.EXCHANGE_DATA, rec.failing("bad", KeyError("BTC")), group="bad")
    bus.subscribe(channels.DEAD_LETTER, rec.sync("dead"), group="watch")
    bus.subscribe(channels.ALERTS, rec.sync("alerts"), group="watch")
    await bus.publish(ticker_event(1))
    for name in ("dead", "alerts"):
        (event,) = rec.got[name]
        assert event.source == "bus@node-7"
        assert event.ts_ns == 42_000_000_000
    assert rec.got["dead"][0].payload.error == "'BTC'"
    assert rec.got["dead"][0].payload.error_type == "KeyError"


async def test_recent_dead_letters_keeps_the_newest() -> None:
    bus = MemoryBus(dead_letter_history=2)
    rec = Recorder()
    bus.subscribe(channels.EXCHANGE_DATA, rec.failing("bad", ValueError("x")), group="bad")
    events = [ticker_event(n) for n in range(3)]
    for event in events:
        await bus.publish(event)
    assert [d.event_id for d in bus.recent_dead_letters] == [events[1].id, events[2].id]
    assert bus.stats.dead_letters == {"exchange_data": 3}
    assert bus.stats.published == {"exchange_data": 3, "dead_letter": 3, "alerts": 3}


async def test_request_failed_chains_the_very_error() -> None:
    bus = MemoryBus()
    error = ValueError("no free cash")

    async def broken(payload: Payload) -> Payload:
        raise error

    bus.serve(ENDPOINT, broken)
    with pytest.raises(RequestFailed) as caught:
        await bus.request(ENDPOINT, allocation_request(), timeout_s=1)
    assert caught.value.__cause__ is error


def test_subscribe_needs_a_group() -> None:
    bus = MemoryBus()
    with pytest.raises(ValueError, match="group"):
        bus.subscribe(channels.EXCHANGE_DATA, lambda event: None, group="")


async def test_a_closed_bus_does_not_dead_letter() -> None:
    bus = MemoryBus()
    rec = Recorder()

    async def closes_then_fails(event: Event) -> None:
        await bus.close()
        raise ValueError("late")

    bus.subscribe(channels.EXCHANGE_DATA, closes_then_fails, group="bad")
    bus.subscribe(channels.DEAD_LETTER, rec.sync("dead"), group="watch")
    await bus.publish(ticker_event(1))
    assert rec.got["dead"] == []
    assert bus.stats.dead_letters == {"exchange_data": 1}
    assert [d.error for d in bus.recent_dead_letters] == ["late"]


def test_create_bus() -> None:
    clock = ReplayClock(5)
    bus = create_bus("memory", clock=clock, instance_id="n1")
    assert isinstance(bus, MemoryBus)
    with pytest.raises(ValueError, match="kafka"):
        create_bus("kafka", clock=clock, instance_id="n1")


async def test_decimal_payloads_are_passed_untouched() -> None:
    bus = MemoryBus()
    rec = Recorder()
    bus.subscribe(channels.EXCHANGE_DATA, rec.sync("g"), group="g")
    await bus.publish(ticker_event(0))
    bid = rec.got["g"][0].payload.tickers[0].bid
    assert bid == Decimal("46377.12345678")
    assert bid.as_tuple().exponent == -8
