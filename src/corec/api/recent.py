"""The last events seen on each channel, for ``GET /api/v1/events/{channel}``."""

from __future__ import annotations

from collections import deque

from corec.core.events import Event


class RecentEvents:
    """A bounded buffer per channel of the newest events (oldest dropped first).

    Args:
        per_channel: events kept per channel.
    """

    def __init__(self, per_channel: int) -> None:
        self.per_channel = per_channel
        self._events: dict[str, deque[Event]] = {}

    def add(self, event: Event) -> None:
        """Keep ``event`` (a bus handler: cheap, never raises)."""
        buffer = self._events.get(event.channel)
        if buffer is None:
            buffer = self._events[event.channel] = deque(maxlen=self.per_channel)
        buffer.append(event)

    def latest(self, channel: str, limit: int, event_type: str | None = None) -> list[Event]:
        """Up to ``limit`` newest events of ``channel`` (optionally of one payload type),
        newest first."""
        out: list[Event] = []
        for event in reversed(self._events.get(channel, ())):
            if event_type is None or event.type == event_type:
                out.append(event)
                if len(out) >= limit:
                    break
        return out
