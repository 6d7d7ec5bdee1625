"""A sliding-window limiter of failed logins, per key (user name, client address).

A key with ``max_failures`` failures within the last ``window_s`` seconds is locked
until its oldest failure leaves the window. Only failures count: a person who types
the right password is never slowed down, and a lockout ends on its own. Attempts made
while locked are refused without checking the password and are not counted, so a lock
cannot be extended by hammering it. An attempt is counted as a failure when it starts
and forgotten if it succeeds, so concurrent guesses cannot slip past the limit.

Kept in memory, per node: a restart forgets it. (aiolimiter's leaky bucket limits a
rate of *calls*; here only failures count and the caller needs the exact time to retry,
hence this small window.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from corec.core.clock import NS_PER_S

_PRUNE_EVERY = 1024


class FailedLoginLimiter:
    """Failed logins per key within a sliding window (see the module docstring).

    Args:
        max_failures: failures allowed within the window (> 0).
        window_s: the window, whole seconds (> 0).

    Raises:
        ValueError: a non-positive ``max_failures`` or ``window_s``.
    """

    def __init__(self, max_failures: int, window_s: int) -> None:
        if max_failures <= 0:
            raise ValueError(f"max_failures must be > 0, got {max_failures}")
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.max_failures = max_failures
        self.window_ns = window_s * NS_PER_S
        self._failures: dict[str, deque[int]] = {}
        self._records = 0

    def __len__(self) -> int:
        """Keys with failures still in memory."""
        return len(self._failures)

    def _recent(self, key: str, now_ns: int) -> deque[int] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now_ns - self.window_ns:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after_s(self, keys: Iterable[str], now_ns: int) -> int | None:
        """Whole seconds (≥ 1, rounded up) until every key in ``keys`` may try again, or
        ``None`` when none is locked at ``now_ns`` (UTC ns)."""
        wait_ns = 0
        for key in keys:
            times = self._recent(key, now_ns)
            if times is not None and len(times) >= self.max_failures:
                # locked until enough failures leave the window to drop below the limit
                unlock_ns = times[len(times) - self.max_failures] + self.window_ns
                wait_ns = max(wait_ns, unlock_ns - now_ns)
        if wait_ns <= 0:
            return None
        return max(1, -(-wait_ns // NS_PER_S))

    def record_failure(self, keys: Iterable[str], now_ns: int) -> None:
        """Count one failure at ``now_ns`` against each key."""
        for key in keys:
            self._failures.setdefault(key, deque()).append(now_ns)
        self._records += 1
        if self._records % _PRUNE_EVERY == 0:
            for key in list(self._failures):
                self._recent(key, now_ns)

    def forget(self, key: str, ts_ns: int | None = None) -> None:
        """Drop the failure counted at ``ts_ns`` for ``key`` (an attempt counted before
        its outcome was known turned out good), or every failure of ``key`` with
        ``ts_ns=None``."""
        times = self._failures.get(key)
        if times is None:
            return
        if ts_ns is None:
            times.clear()
        else:
            try:
                times.remove(ts_ns)
            except ValueError:
                return
        if not times:
            del self._failures[key]
