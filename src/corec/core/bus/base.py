"""The bus interface every backend implements (``memory`` now, ``redis`` later).

Semantics every backend keeps (and the shared test suite checks):

- ``publish(event)`` delivers the event to every *group* subscribed to
  ``event.channel``; inside a group, to exactly one of its handlers (competing
  consumers, round robin in memory). Delivery is at-least-once; handlers that change
  money or state are idempotent by event id or key.
- A handler that raises does not stop the others: the event goes to ``dead_letter``
  with the error, and an ``alerts`` event named ``dead_letter`` is raised. A failure
  while handling ``dead_letter`` itself is only logged (no loops).
- ``request(endpoint, payload, timeout_s)`` calls the one responder registered with
  ``serve(endpoint, ...)`` and returns its reply payload, or raises
  :class:`~corec.core.errors.NoResponder`, :class:`~corec.core.errors.RequestTimeout`
  or :class:`~corec.core.errors.RequestFailed`. A responder is never cut off by its
  requester's timeout or cancellation: it finishes (so its changes of state are whole)
  and a late reply is logged and dropped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from corec.core.events import Event, Payload
from corec.core.metrics import LatencyHistogram

Handler = Callable[[Event], Awaitable[None] | None]
"""A subscriber: ``async def handler(event) -> None`` or a plain function."""

Responder = Callable[[Payload], Awaitable[Payload]]
"""A request endpoint: ``async def responder(payload) -> reply_payload``."""


@dataclass
class BusStats:
    """Counters of a bus since it was created.

    Fields:
        published: events published, by channel.
        delivered: handler invocations that returned normally, by channel.
        dead_letters: handler invocations that raised, by channel of the failed event.
        requests: requests served, by endpoint.
        request_errors: requests that failed or timed out, by endpoint.
    """

    published: dict[str, int] = field(default_factory=dict)
    delivered: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    request_errors: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict copy, for health reports and JSON."""
        return {
            "published": dict(self.published),
            "delivered": dict(self.delivered),
            "dead_letters": dict(self.dead_letters),
            "requests": dict(self.requests),
            "request_errors": dict(self.request_errors),
        }


class Subscription(ABC):
    """A live subscription; ``cancel()`` stops delivery to its handler."""

    channel: str
    group: str

    @abstractmethod
    def cancel(self) -> None:
        """Stop delivering to this handler (idempotent)."""


class Bus(ABC):
    """Publish/subscribe plus request/reply; see the module docstring for the contract."""

    stats: BusStats

    @abstractmethod
    async def publish(self, event: Event) -> None:
        """Deliver ``event`` to the subscribers of ``event.channel``.

        Raises:
            BusError: the bus is closed.
        """

    @abstractmethod
    def subscribe(self, channel: str, handler: Handler, *, group: str) -> Subscription:
        """Deliver events of ``channel`` to ``handler`` as a member of consumer ``group``."""

    @abstractmethod
    def serve(self, endpoint: str, responder: Responder) -> None:
        """Answer ``request(endpoint, ...)`` with ``responder``.

        Raises:
            BusError: ``endpoint`` is served already.
        """

    @abstractmethod
    def unserve(self, endpoint: str) -> None:
        """Stop answering ``endpoint`` (idempotent)."""

    @abstractmethod
    async def request(self, endpoint: str, payload: Payload, *, timeout_s: float) -> Payload:
        """The reply of ``endpoint``'s responder to ``payload``.

        Raises:
            NoResponder: nobody serves ``endpoint``.
            RequestTimeout: no reply within ``timeout_s`` seconds.
            RequestFailed: the responder raised (``__cause__`` is its error).
        """

    def handler_latency(self) -> dict[tuple[str, str], LatencyHistogram]:
        """Handler call latency by ``(channel, group)``, for ``/metrics`` (a backend
        that does not time its handlers returns nothing)."""
        return {}

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect to the backing service, if any."""

    @abstractmethod
    async def close(self) -> None:
        """Stop delivering; later ``publish`` calls raise ``BusError``."""
