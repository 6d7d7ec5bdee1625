"""Payloads the core itself publishes: alerts, dead letters, lifecycle and breaker changes.

They live in the core because the bus and the nucleus publish them; plugins import them
through :mod:`corec.messages` (``alerts``, ``dead_letter``, ``system``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar, Final, Literal

import msgspec

from corec.core.events import Payload

Severity = Literal["critical", "high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")
AlertState = Literal["firing", "resolved"]


class Alert(Payload, frozen=True, kw_only=True):
    """A raw alert raised by a plugin or the nucleus, published on ``alerts``.

    Fields:
        name: what happened, snake_case (``price_move``, ``stale_data``, ``dead_letter``).
        message: one line for a person; never a secret.
        severity: the raiser's hint; the alert manager may reclassify it.
        labels: identity of the alert (with ``name``): alerts with the same name and
            labels are the same alert for deduplication. Keep values low-cardinality.
        state: ``firing`` (default), or ``resolved`` when the condition ended (a breaker
            closed): it resolves the firing alert with the same name and labels.
        resolvable: a resolved alert will follow (a breaker, a threshold with a way
            back): the alert manager keeps it firing until then instead of letting it
            lapse after its ``resolve_timeout_s`` like one-off events (a trade's loss).
    """

    TYPE: ClassVar[str] = "alert"
    name: str
    message: str
    severity: Severity = "medium"
    labels: dict[str, str] = {}
    state: AlertState = "firing"
    resolvable: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("alert.name must not be empty")


class DeadLetter(Payload, frozen=True, kw_only=True):
    """An event a handler could not process, published on ``dead_letter``.

    Fields:
        channel, event_type, event_id: where the failed event came from.
        handler: ``group`` of the subscription that failed (usually the plugin name).
        error_type, error: the exception's class name and message.
        event_json: the failed envelope as JSON text (best effort), for replay by hand.
    """

    TYPE: ClassVar[str] = "dead_letter"
    channel: str
    event_type: str
    event_id: str
    handler: str
    error_type: str
    error: str
    event_json: str


PluginState = Literal["starting", "running", "stopping", "stopped", "failed", "restarting"]


class PluginStateChanged(Payload, frozen=True, kw_only=True):
    """A plugin's lifecycle moved (``system`` channel). ``error`` is set on failures."""

    TYPE: ClassVar[str] = "plugin_state_changed"
    plugin: str
    state: PluginState
    error: str | None = None


BreakerState = Literal["closed", "open", "half_open"]


class BreakerStateChanged(Payload, frozen=True, kw_only=True):
    """A circuit breaker changed state (``system`` channel).

    Fields:
        breaker: the breaker's name (``exchange_sync.binance`` ...).
        previous, current: states; ``reason`` says why (the last error, or "probe ok").
    """

    TYPE: ClassVar[str] = "breaker_state_changed"
    breaker: str
    previous: BreakerState
    current: BreakerState
    reason: str


NodeMode = Literal["normal", "safe", "emergency"]
"""The node's trading mode (NautilusTrader's ACTIVE / REDUCING / HALTED): ``normal``
trades freely; ``safe`` accepts only orders that reduce exposure; ``emergency`` cancels
open orders and halts trading while data and alerts keep running."""
NODE_MODES: tuple[NodeMode, ...] = ("normal", "safe", "emergency")


class NodeShutdown(Payload, frozen=True, kw_only=True):
    """The node is stopping (``system`` channel), with the reason."""

    TYPE: ClassVar[str] = "node_shutdown"
    reason: str


class ModeChanged(Payload, frozen=True, kw_only=True):
    """The node's mode changed (``system`` channel); also the reply of ``node.set_mode``.

    Fields:
        previous, current: modes (:data:`NodeMode`); equal when the request asked for
            the mode the node was already in (nothing was published then).
        reason: why, for a person (an operator's words, or the breaker that moved it).
        by: who: a user name, ``cli``, or ``plugin@instance``.
        ts_ns: when, on the node clock (UTC ns).
    """

    TYPE: ClassVar[str] = "mode_changed"
    previous: NodeMode
    current: NodeMode
    reason: str
    by: str
    ts_ns: int


NODE_STATUS: Final = "node.status"
"""Request endpoint served by the nucleus: :class:`NodeStatusRequest` → :class:`NodeStatus`."""

NODE_SET_MODE: Final = "node.set_mode"
"""Request endpoint served by the nucleus: :class:`SetModeRequest` → :class:`ModeChanged`."""


class NodeStatusRequest(Payload, frozen=True, kw_only=True):
    """Ask the nucleus for :class:`NodeStatus`."""

    TYPE: ClassVar[str] = "node_status_request"


class PluginStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One plugin in :class:`NodeStatus`.

    Fields:
        name: the plugin's name.
        state: lifecycle (:data:`PluginState`).
        status: its own health (``ok``, ``degraded``, ``failed``, ``stopped``).
        error: the last failure, if any.
        details: the plugin's health details (JSON-friendly, free-form).
    """

    name: str
    state: str
    status: str
    error: str | None = None
    details: dict[str, Any] = {}


class NodeStatus(Payload, frozen=True, kw_only=True):
    """The node now: identity, mode, uptime and every plugin's health.

    Fields:
        instance_id: the node's ``node.instance_id``.
        mode: :data:`NodeMode`.
        mode_since_ts_ns: when the mode last changed (node clock), ``None`` if never.
        uptime_s: wall-clock seconds since the node was built (3 decimals).
        plugins: in start order.
    """

    TYPE: ClassVar[str] = "node_status"
    instance_id: str
    mode: NodeMode
    mode_since_ts_ns: int | None
    uptime_s: Decimal
    plugins: tuple[PluginStatus, ...]


class SetModeRequest(Payload, frozen=True, kw_only=True):
    """Ask the nucleus to move to ``mode``; ``reason`` and ``by`` go into the event."""

    TYPE: ClassVar[str] = "set_mode_request"
    mode: NodeMode
    reason: str
    by: str

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise ValueError("reason must not be empty: say why the mode changes")
