"""The event envelope and the base of every typed payload.

An :class:`Event` is immutable::

    Event(id, channel, type, ts_ns, source, key, payload)

- ``id``: UUIDv7 text, unique and time-ordered (:func:`corec.core.ids.new_id`).
- ``channel``: one of :mod:`corec.core.channels`.
- ``type``: the payload's type name (``Payload.TYPE``), e.g. ``"ticker_batch"``.
- ``ts_ns``: when the event was made, UTC nanoseconds, from the node's clock.
- ``source``: ``plugin@instance`` of the publisher.
- ``key``: idempotency / partition key where one exists (trade id, contribution id).
- ``payload``: a :class:`Payload` subclass instance.

Payload classes register themselves by their ``TYPE`` when defined, so the codec can
decode any registered payload; :func:`payload_types` returns the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec

from corec.core.clock import Clock
from corec.core.ids import new_id

_REGISTRY: dict[str, type[Payload]] = {}


class Payload(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every typed payload. Subclasses set ``TYPE`` (unique) and are registered.

    A subclass may define ``__post_init__`` to check invariants; it runs on construction
    and on decoding, and should raise ``ValueError`` with the field name and the reason.
    """

    TYPE: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        type_name = cls.__dict__.get("TYPE", "")
        if not type_name:
            return
        existing = _REGISTRY.get(type_name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise TypeError(f"payload type {type_name!r} is already registered by {existing!r}")
        _REGISTRY[type_name] = cls


def payload_types() -> Mapping[str, type[Payload]]:
    """All registered payload classes by ``TYPE`` (read-only view)."""
    return _REGISTRY


class Event(msgspec.Struct, frozen=True, gc=False):
    """The immutable envelope of everything on the bus (see the module docstring)."""

    id: str
    channel: str
    type: str
    ts_ns: int
    source: str
    key: str | None
    payload: Any


def make_event(
    channel: str,
    payload: Payload,
    *,
    source: str,
    clock: Clock,
    key: str | None = None,
) -> Event:
    """Wrap ``payload`` in a new envelope stamped with a fresh id and ``clock``'s time.

    Raises:
        TypeError: ``payload`` is not a registered :class:`Payload`.
    """
    type_name = getattr(payload, "TYPE", "")
    if not type_name:
        raise TypeError(f"payload {payload!r} is not a registered Payload subclass")
    return Event(new_id(), channel, type_name, clock.now_ns(), source, key, payload)
