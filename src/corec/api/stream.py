"""The WebSocket stream: bus events fanned out to subscribed clients, filtered by role.

Protocol (``/ws?token=<token>``)::

    client → {"op": "subscribe", "channels": ["prices", "pool", ...]}
    client → {"op": "unsubscribe", "channels": [...]}
    server → {"type": "subscribed", "channels": [...]}
    server → {"type": "event", "stream": "pool", "channel": "capital_data",
              "event_type": "pool_state", "id": ..., "ts_ns": ..., "payload": {...}}
    server → {"type": "error", "detail": "..."}          (a bad message; stays open)
    server → {"type": "dropped", "reason": "..."}        then close code 4008

Streams and the channels behind them: ``prices`` ← ``market_data``; ``pool`` ←
``capital_data``; ``trades`` ← ``trading_results``; ``alerts`` ← ``alert_data``
(classified alerts and acknowledgements); ``system`` ← ``system`` (modes, plugins,
breakers).

Filtering: a ``viewer`` gets from ``pool`` only the pool's own figures (no member's
flows); a ``member`` gets those plus their own flows; an ``admin`` everything. Users'
changes on ``system`` (who has which role) go to admins only.

Backpressure: the bus handler never waits on a client. Each event is encoded once and
put on every interested client's bounded queue (``ws_queue_size``); a client whose
queue is full is dropped (told, best effort, and closed with 4008), so one slow client
costs the node nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Final

import msgspec
import structlog

from corec.api.models import jsonable
from corec.core import channels
from corec.core.events import Event
from corec.messages.user_data import Principal

log = structlog.get_logger("corec.api.ws")

STREAMS: Final[dict[str, str]] = {
    "prices": channels.MARKET_DATA,
    "pool": channels.CAPITAL_DATA,
    "trades": channels.TRADING_RESULTS,
    "alerts": channels.ALERT_DATA,
    "system": channels.SYSTEM,
}
STREAM_OF_CHANNEL: Final = {channel: stream for stream, channel in STREAMS.items()}

POOL_PUBLIC_TYPES: Final = frozenset({"pool_state", "phase_changed"})
"""``capital_data`` types without personal data (the pool's own figures)."""

ALERT_TYPES: Final = frozenset(
    {"alert_recorded", "alert_expired", "alert_acknowledged", "silence_changed"}
)

ADMIN_ONLY_SYSTEM_TYPES: Final = frozenset({"user_changed"})
"""``system`` types only admins see (who has which role)."""

CLOSE_TOO_SLOW: Final = 4008
CLOSE_UNAUTHORIZED: Final = 4401

_encoder = msgspec.json.Encoder()


def visible(principal: Principal, event: Event) -> bool:
    """Whether ``principal`` may see ``event`` (see the module docstring)."""
    if event.channel == channels.CAPITAL_DATA:
        if event.type in POOL_PUBLIC_TYPES or principal.role == "admin":
            return True
        member = getattr(event.payload, "member", None)
        return principal.role == "member" and member is not None and member == principal.member
    if event.channel == channels.ALERT_DATA:
        return event.type in ALERT_TYPES
    if event.channel == channels.SYSTEM and event.type in ADMIN_ONLY_SYSTEM_TYPES:
        return principal.role == "admin"
    return True


class Client:
    """One connected WebSocket client: who, what it subscribed to, its queue.

    Args:
        principal: the authenticated caller.
        queue_size: events that may wait for it before it counts as too slow.
    """

    def __init__(self, principal: Principal, queue_size: int) -> None:
        self.principal = principal
        self.streams: set[str] = set()
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=queue_size)
        self.dropped: str | None = None

    def offer(self, message: bytes) -> bool:
        """Queue ``message``; False (and the client marked dropped) when the queue is full."""
        if self.dropped is not None:
            return False
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped = f"too slow: more than {self.queue.maxsize} events waiting"
            # What waits is never sent now: empty the queue and leave the sentinel that
            # tells the sender to say why and close.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)
            return False
        return True


class Hub:
    """Every connected client, and the fan-out of bus events to them.

    Counters: ``sent`` events queued, ``dropped_clients`` clients dropped as too slow.
    """

    def __init__(self) -> None:
        self.clients: set[Client] = set()
        self.sent = 0
        self.dropped_clients = 0

    def add(self, client: Client) -> None:
        """Start delivering to ``client``."""
        self.clients.add(client)

    def remove(self, client: Client) -> None:
        """Stop delivering to ``client`` (idempotent)."""
        self.clients.discard(client)

    def dispatch(self, event: Event) -> None:
        """A bus handler: queue ``event`` for every subscribed client allowed to see it.
        Never waits; encodes the message once, and only if someone wants it."""
        stream = STREAM_OF_CHANNEL.get(event.channel)
        if stream is None or not self.clients:
            return
        message: bytes | None = None
        for client in tuple(self.clients):
            if stream not in client.streams or not visible(client.principal, event):
                continue
            if message is None:
                message = encode_event(stream, event)
            if client.offer(message):
                self.sent += 1
            elif client.dropped is not None and client in self.clients:
                self.clients.discard(client)
                self.dropped_clients += 1
                log.warning("ws_client_dropped", user=client.principal.user, reason=client.dropped)


def encode_event(stream: str, event: Event) -> bytes:
    """The ``event`` message (JSON bytes) for ``stream``."""
    return _encoder.encode(
        {
            "type": "event",
            "stream": stream,
            "channel": event.channel,
            "event_type": event.type,
            "id": event.id,
            "ts_ns": event.ts_ns,
            "payload": jsonable(event.payload),
        }
    )


def parse_command(text: str | bytes) -> tuple[str, list[str]]:
    """``(op, streams)`` of a client message.

    Raises:
        ValueError: not JSON, not an object, an unknown ``op`` or stream (the message
            says which).
    """
    try:
        message: Any = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise ValueError("a message must be a JSON object")
    op = message.get("op")
    if op not in ("subscribe", "unsubscribe"):
        raise ValueError(f"op must be 'subscribe' or 'unsubscribe', got {op!r}")
    streams = message.get("channels")
    if not isinstance(streams, list) or not all(isinstance(s, str) for s in streams):
        raise ValueError("channels must be a list of stream names")
    unknown = sorted(set(streams) - set(STREAMS))
    if unknown:
        raise ValueError(f"unknown channel(s) {unknown}; expected some of {sorted(STREAMS)}")
    return op, streams


def subscribed_message(streams: Iterable[str]) -> bytes:
    """The reply to a (un)subscribe: the client's streams now."""
    return _encoder.encode({"type": "subscribed", "channels": sorted(streams)})
