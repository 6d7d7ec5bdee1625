"""The in-process ``memory`` bus: asyncio, no encoding, handlers called inline.

``publish`` awaits each subscribed group's handler in subscription order before it
returns, so a slow handler slows its publisher (natural backpressure) and a replay is
deterministic. Sync handlers are called directly, without a coroutine, which is what
makes this backend fast (see ``benchmarks/``).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections import deque
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

import structlog

from corec.core import channels
from corec.core.bus.base import Bus, BusStats, Handler, Responder, Subscription
from corec.core.clock import Clock, SystemClock
from corec.core.codec import event_to_json
from corec.core.errors import BusError, NoResponder, RequestFailed, RequestTimeout
from corec.core.events import Event, Payload, make_event
from corec.core.metrics import LatencyHistogram
from corec.core.notices import Alert, DeadLetter

log = structlog.get_logger("corec.bus")

# (group, callable, is_coroutine_function)
_Target = tuple[str, Callable[[Event], Any], bool, LatencyHistogram]


def _drop_late_reply(endpoint: str, reply: asyncio.Future[Any]) -> None:
    """Log the outcome of a responder whose requester stopped waiting."""
    if reply.cancelled():
        log.warning("late_reply_cancelled", endpoint=endpoint)
    elif reply.exception() is not None:
        log.error("late_reply_failed", endpoint=endpoint, error=repr(reply.exception()))
    else:
        log.warning("late_reply_dropped", endpoint=endpoint, reply=type(reply.result()).__name__)


class _MemorySubscription(Subscription):
    def __init__(self, bus: MemoryBus, channel: str, group: str, handler: Handler) -> None:
        self.channel = channel
        self.group = group
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler)
        self._bus = bus
        self.active = True

    def cancel(self) -> None:
        if self.active:
            self.active = False
            self._bus._remove(self)


class _Route:
    """One channel's delivery targets and its two hot counters (one dict lookup per publish)."""

    __slots__ = ("delivered", "published", "targets")

    def __init__(self) -> None:
        self.targets: tuple[_Target, ...] = ()
        self.published = 0
        self.delivered = 0


class _RoundRobin:
    """Dispatch to one handler of a group at a time, in turn."""

    def __init__(self, subs: list[_MemorySubscription]) -> None:
        self._subs = subs
        self._next = 0

    async def __call__(self, event: Event) -> None:
        sub = self._subs[self._next % len(self._subs)]
        self._next += 1
        if sub.is_async:
            await sub.handler(event)  # type: ignore[misc]
        else:
            sub.handler(event)


class MemoryBus(Bus):
    """In-process bus.

    Args:
        clock: stamps the dead-letter and alert events the bus makes itself.
        instance_id: node instance, used in ``source`` (``bus@instance``).
        dead_letter_history: how many recent dead letters :attr:`recent_dead_letters`
            keeps for inspection.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        instance_id: str = "local",
        dead_letter_history: int = 100,
    ) -> None:
        self._stats = BusStats()  # dead_letters, requests, request_errors
        self.recent_dead_letters: deque[DeadLetter] = deque(maxlen=dead_letter_history)
        self._clock = clock or SystemClock()
        self._source = f"bus@{instance_id}"
        self._subs: dict[str, dict[str, list[_MemorySubscription]]] = {}
        self._routes: dict[str, _Route] = {}
        self._responders: dict[str, Responder] = {}
        self._closed = False
        self._latency: dict[tuple[str, str], LatencyHistogram] = {}

    @property
    def stats(self) -> BusStats:  # type: ignore[override]
        """A snapshot of the counters; ``published``/``delivered`` come from the routes."""
        routes = self._routes
        return BusStats(
            published={ch: r.published for ch, r in routes.items() if r.published},
            delivered={ch: r.delivered for ch, r in routes.items() if r.delivered},
            dead_letters=dict(self._stats.dead_letters),
            requests=dict(self._stats.requests),
            request_errors=dict(self._stats.request_errors),
        )

    def handler_latency(self) -> dict[tuple[str, str], LatencyHistogram]:
        """Handler call latency by ``(channel, group)`` (failed calls included)."""
        return dict(self._latency)

    # -- publish / subscribe -------------------------------------------------------
    async def publish(self, event: Event) -> None:
        if self._closed:
            raise BusError(f"bus is closed; cannot publish {event.type} on {event.channel}")
        route = self._routes.get(event.channel)
        if route is None:
            route = self._routes[event.channel] = _Route()
        route.published += 1
        ok = 0
        for group, handler, is_async, latency in route.targets:
            started = perf_counter_ns()
            try:
                if is_async:
                    await handler(event)
                else:
                    handler(event)
                ok += 1
            except Exception as exc:  # a handler's failure must not stop the others
                await self._dead_letter(event, group, exc)
            latency.observe(perf_counter_ns() - started)
        route.delivered += ok

    def subscribe(self, channel: str, handler: Handler, *, group: str) -> Subscription:
        if not group:
            raise ValueError("group must not be empty")
        sub = _MemorySubscription(self, channel, group, handler)
        self._subs.setdefault(channel, {}).setdefault(group, []).append(sub)
        self._rebuild(channel)
        return sub

    def _remove(self, sub: _MemorySubscription) -> None:
        groups = self._subs.get(sub.channel, {})
        members = groups.get(sub.group, [])
        if sub in members:
            members.remove(sub)
        if not members:
            groups.pop(sub.group, None)
        self._rebuild(sub.channel)

    def _rebuild(self, channel: str) -> None:
        targets: list[_Target] = []
        for group, subs in self._subs.get(channel, {}).items():
            latency = self._latency.get((channel, group))
            if latency is None:
                latency = self._latency[(channel, group)] = LatencyHistogram()
            if len(subs) == 1:
                targets.append((group, subs[0].handler, subs[0].is_async, latency))
            else:
                targets.append((group, _RoundRobin(list(subs)), True, latency))
        route = self._routes.get(channel)
        if route is None:
            route = self._routes[channel] = _Route()
        route.targets = tuple(targets)

    async def _dead_letter(self, event: Event, group: str, exc: Exception) -> None:
        counts = self._stats.dead_letters
        counts[event.channel] = counts.get(event.channel, 0) + 1
        error = f"{type(exc).__name__}: {exc}"
        log.error(
            "handler_failed",
            channel=event.channel,
            event_type=event.type,
            event_id=event.id,
            handler=group,
            error=error,
        )
        letter = DeadLetter(
            channel=event.channel,
            event_type=event.type,
            event_id=event.id,
            handler=group,
            error_type=type(exc).__name__,
            error=str(exc),
            event_json=event_to_json(event),
        )
        self.recent_dead_letters.append(letter)
        if event.channel == channels.DEAD_LETTER or self._closed:
            return  # never dead-letter a dead letter
        await self.publish(
            make_event(channels.DEAD_LETTER, letter, source=self._source, clock=self._clock)
        )
        if event.channel != channels.ALERTS:
            alert = Alert(
                name="dead_letter",
                severity="high",
                message=f"{group} could not process {event.type} on {event.channel}: {error}",
                labels={"channel": event.channel, "handler": group},
            )
            await self.publish(
                make_event(channels.ALERTS, alert, source=self._source, clock=self._clock)
            )

    # -- request / reply -----------------------------------------------------------
    def serve(self, endpoint: str, responder: Responder) -> None:
        if endpoint in self._responders:
            raise BusError(f"endpoint {endpoint!r} is served already")
        self._responders[endpoint] = responder

    def unserve(self, endpoint: str) -> None:
        self._responders.pop(endpoint, None)

    async def request(self, endpoint: str, payload: Payload, *, timeout_s: float) -> Payload:
        if self._closed:
            raise BusError(f"bus is closed; cannot request {endpoint!r}")
        responder = self._responders.get(endpoint)
        if responder is None:
            raise NoResponder(f"no responder serves {endpoint!r}")
        counts = self._stats.requests
        counts[endpoint] = counts.get(endpoint, 0) + 1
        # the responder runs as its own task: a requester that times out or is cancelled
        # never cuts a responder off half-way through a change of state
        reply = asyncio.ensure_future(responder(payload))
        try:
            done, _ = await asyncio.wait((reply,), timeout=timeout_s)
        except asyncio.CancelledError:
            reply.add_done_callback(functools.partial(_drop_late_reply, endpoint))
            raise
        if not done:
            self._count_request_error(endpoint)
            reply.add_done_callback(functools.partial(_drop_late_reply, endpoint))
            raise RequestTimeout(f"{endpoint} did not answer within {timeout_s} s")
        try:
            return reply.result()
        except Exception as exc:
            self._count_request_error(endpoint)
            raise RequestFailed(f"{endpoint} failed: {type(exc).__name__}: {exc}") from exc

    def _count_request_error(self, endpoint: str) -> None:
        errors = self._stats.request_errors
        errors[endpoint] = errors.get(endpoint, 0) + 1

    async def close(self) -> None:
        self._closed = True
