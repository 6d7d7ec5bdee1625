"""Payloads the core itself publishes: alerts, dead letters, lifecycle and breaker changes.

They live in the core because the bus and the nucleus publish them; plugins import them
through :mod:`corec.messages` (``alerts``, ``dead_letter``, ``system``).
"""

from __future__ import annotations

from typing import ClassVar, Literal

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
