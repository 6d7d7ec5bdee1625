"""The plugin contract: a class, its config model, its tables, its channels.

A plugin is a package ``corec/plugins/<name>/`` (or any installed package) whose
class is registered in the entry-point group ``corec.plugins``::

    [project.entry-points."corec.plugins"]
    my_plugin = "my_package.plugin:MyPlugin"

The class declares, as class attributes:

- ``name``: unique, snake_case; also its config section and default database name.
- ``Config``: a :class:`PluginConfig` subclass (frozen, unknown fields rejected).
- ``consumes`` / ``publishes``: channels (:mod:`corec.core.channels`).
- ``serves`` / ``requests``: request endpoints it answers / calls. A plugin that
  requests an endpoint starts after the plugin serving it.
- ``migrations``: its Alembic script folder, or ``None`` when it has no tables.
- ``status_key``: the key of its section in ``corec status --json``.

and implements ``start(ctx)``, ``stop()``, ``health()`` and, to report on its tables
while no node runs, ``read_status(store, config)``.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import structlog
from pydantic import field_validator

from corec.core import channels
from corec.core.bus import Bus, Handler, Responder, Subscription
from corec.core.clock import Clock
from corec.core.config import CorecConfig, FrozenModel
from corec.core.events import Payload, make_event
from corec.core.notices import Alert, BreakerState, BreakerStateChanged, NodeMode, Severity
from corec.core.store import Store

if TYPE_CHECKING:
    from corec.core.nucleus import Node


class PluginConfig(FrozenModel):
    """Base of every plugin's config model.

    Fields:
        database_url: this plugin's database, ``sqlite:///path`` or
            ``postgresql+asyncpg://user@host/db``; default ``sqlite:///<data_dir>/<name>.db``.
            Put credentials in the environment (``COREC__<PLUGIN>__DATABASE_URL``), not in git.
    """

    database_url: str | None = None

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(
            ("sqlite://", "sqlite+", "postgresql://", "postgresql+")
        ):
            raise ValueError("must be a sqlite:///path or postgresql+asyncpg://user@host/db URL")
        return url


HealthStatus = Literal["ok", "degraded", "failed", "stopped"]


@dataclass
class PluginHealth:
    """A plugin's health: ``status`` and free-form ``details`` (JSON-friendly)."""

    status: HealthStatus = "ok"
    details: dict[str, Any] = field(default_factory=dict)


class PluginContext:
    """What the nucleus gives a plugin in ``start``: bus, store, clock, log, helpers.

    Publishing, subscribing and serving go through the context so the source and
    consumer group are always the plugin's own.
    """

    def __init__(
        self,
        *,
        name: str,
        node: Node,
        bus: Bus,
        store: Store | None,
        clock: Clock,
        config: CorecConfig,
    ) -> None:
        self.name = name
        self.bus = bus
        self.store = store
        self.clock = clock
        self.config = config
        self.source = f"{name}@{config.node.instance_id}"
        self.log = structlog.get_logger(f"corec.{name}")
        self._node = node
        self._subscriptions: list[Subscription] = []
        self._endpoints: list[str] = []
        self.stopping = asyncio.Event()
        """Set when the node stops this plugin: long-running tasks finish their current
        step and return (they are cancelled only after ``shutdown_timeout_s``)."""

    @property
    def mode(self) -> NodeMode:
        """The node's mode now (``normal``, ``safe`` or ``emergency``; DESIGN.md "Modes").

        Check it at the order gate, on every order: ``safe`` admits only orders that
        reduce exposure, ``emergency`` none. A change is published on ``system`` as
        :class:`~corec.core.notices.ModeChanged`."""
        return self._node.mode

    @property
    def request_timeout_s(self) -> float:
        """The node's default request timeout in seconds."""
        return self.config.bus.request_timeout_s

    async def publish(self, channel: str, payload: Payload, *, key: str | None = None) -> None:
        """Publish ``payload`` on ``channel`` in a new envelope from this plugin."""
        await self.bus.publish(
            make_event(channel, payload, source=self.source, clock=self.clock, key=key)
        )

    def subscribe(self, channel: str, handler: Handler) -> Subscription:
        """Receive ``channel``'s events in consumer group ``<plugin name>``."""
        sub = self.bus.subscribe(channel, handler, group=self.name)
        self._subscriptions.append(sub)
        return sub

    def serve(self, endpoint: str, responder: Responder) -> None:
        """Answer requests to ``endpoint``."""
        self.bus.serve(endpoint, responder)
        self._endpoints.append(endpoint)

    async def request(
        self, endpoint: str, payload: Payload, *, timeout_s: float | None = None
    ) -> Payload:
        """The reply of ``endpoint`` (see :meth:`corec.core.bus.Bus.request`)."""
        return await self.bus.request(
            endpoint, payload, timeout_s=timeout_s or self.request_timeout_s
        )

    async def alert(
        self,
        name: str,
        message: str,
        *,
        severity: Severity = "medium",
        labels: dict[str, str] | None = None,
        resolved: bool = False,
        resolvable: bool = False,
    ) -> None:
        """Raise an alert on the ``alerts`` channel (label ``plugin`` = this plugin);
        ``resolved=True`` ends the firing alert with the same name and labels;
        ``resolvable=True`` promises such an end (see :class:`Alert`)."""
        alert = Alert(
            name=name,
            message=message,
            severity=severity,
            labels={"plugin": self.name, **(labels or {})},
            state="resolved" if resolved else "firing",
            resolvable=resolvable,
        )
        await self.publish(channels.ALERTS, alert)

    async def announce_breaker(
        self,
        breaker: str,
        previous: BreakerState,
        current: BreakerState,
        reason: str,
        *,
        subject: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        """A circuit breaker moved: a ``BreakerStateChanged`` on ``system`` and an alert
        naming ``subject`` (default the breaker): ``breaker_open`` (high) firing when it
        opens and resolved when it closes; ``breaker_half_open`` (low) when it probes.
        Use as (part of) a breaker's ``on_change``."""
        await self.publish(
            channels.SYSTEM,
            BreakerStateChanged(breaker=breaker, previous=previous, current=current, reason=reason),
        )
        closed = current == "closed"
        await self.alert(
            "breaker_open" if closed else f"breaker_{current}",
            f"{subject or breaker}: breaker {previous} -> {current} ({reason})",
            severity="low" if current == "half_open" else "high",
            labels={"breaker": breaker, **(labels or {})},
            resolved=closed,
            resolvable=current == "open",
        )

    def spawn(
        self, name: str, factory: Callable[[], Awaitable[None]], *, essential: bool = False
    ) -> None:
        """Run ``factory()`` as a supervised task once the node runs.

        A task that raises is restarted with exponential backoff; one that keeps
        failing is given up on, its plugin stopped, with a critical alert. When an
        ``essential`` task is given up, the node stops too (a replay that cannot go on
        would otherwise leave the node idle forever). A task that returns is done.
        Tasks should return when :attr:`stopping` is set (see :meth:`sleep`).
        """
        self._node.spawn(self.name, name, factory, essential=essential)

    async def sleep(self, seconds: float) -> bool:
        """Wait ``seconds``, or less if the plugin is being stopped; True when stopping."""
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    def request_shutdown(self, reason: str) -> None:
        """Ask the node to stop gracefully (e.g. the replayed recording has ended)."""
        self._node.request_shutdown(reason)

    def detach(self) -> None:
        """Cancel this plugin's subscriptions and endpoints (the nucleus calls it on stop)."""
        for sub in self._subscriptions:
            sub.cancel()
        for endpoint in self._endpoints:
            self.bus.unserve(endpoint)
        self._subscriptions.clear()
        self._endpoints.clear()


class Plugin(ABC):
    """Base class of plugins; see the module docstring for the class attributes."""

    name: ClassVar[str]
    Config: ClassVar[type[PluginConfig]] = PluginConfig
    consumes: ClassVar[tuple[str, ...]] = ()
    publishes: ClassVar[tuple[str, ...]] = ()
    serves: ClassVar[tuple[str, ...]] = ()
    requests: ClassVar[tuple[str, ...]] = ()
    migrations: ClassVar[Path | None] = None
    status_key: ClassVar[str | None] = None

    def __init__(self, config: PluginConfig) -> None:
        self.config = config

    @abstractmethod
    async def start(self, ctx: PluginContext) -> None:
        """Subscribe, serve, load state, spawn tasks. Must return promptly."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources; subscriptions are cancelled by the nucleus."""

    def health(self) -> PluginHealth:
        """Current health; override to add details."""
        return PluginHealth()

    @classmethod
    def replay_start_ns(cls, config: PluginConfig) -> int | None:
        """When, with ``config``, this plugin feeds recorded data whose timestamps drive
        the node clock: the first timestamp (UTC ns), so everything the node does before
        the first bar is stamped in the recording's time. ``None`` otherwise."""
        return None

    @classmethod
    async def read_status(cls, store: Store | None, config: PluginConfig) -> dict[str, Any]:
        """This plugin's part of ``corec status``, read from its tables (no node needed)."""
        return {}
