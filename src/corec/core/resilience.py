"""The resilience kit: retry with backoff, a circuit breaker, a rate limiter.

- :func:`retry` — exponential backoff with full jitter (tenacity), retrying only the
  exception classes it is told to (by default :class:`TemporaryExchangeError`), and
  waiting at least the ``retry_after_s`` an error carries (HTTP ``Retry-After``).
- :class:`CircuitBreaker` — closed → open after ``failure_threshold`` consecutive
  failures → half-open (one probe) after ``reset_timeout_s`` → closed on success, open
  again on failure. Every transition calls ``on_change`` so the owner can publish a
  ``system`` event and raise an alert.
- :func:`rate_limiter` — aiolimiter's leaky bucket: at most ``max_rate`` acquisitions
  per ``time_period_s``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import tenacity
from aiolimiter import AsyncLimiter

from corec.core.clock import NS_PER_S, Clock, SystemClock
from corec.core.errors import CircuitOpenError, TemporaryExchangeError
from corec.core.notices import BreakerState

T = TypeVar("T")


class _WaitBackoffOrRetryAfter(tenacity.wait.wait_base):
    """Exponential backoff with jitter, but never shorter than the error's Retry-After."""

    def __init__(self, base_delay_s: float, max_delay_s: float) -> None:
        self._backoff = tenacity.wait_exponential_jitter(
            multiplier=base_delay_s, max=max_delay_s, jitter=base_delay_s
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        delay = self._backoff(retry_state)
        outcome = retry_state.outcome
        if outcome is not None and outcome.failed:
            retry_after = getattr(outcome.exception(), "retry_after_s", None)
            if retry_after is not None:
                delay = max(delay, float(retry_after))
        return delay


async def retry(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = 4,
    base_delay_s: float = 0.5,
    max_delay_s: float = 30.0,
    retry_on: tuple[type[BaseException], ...] = (TemporaryExchangeError,),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    max_retry_after_s: float | None = None,
) -> T:
    """Await ``call()`` until it succeeds, retrying the exceptions in ``retry_on``.

    Args:
        call: a zero-argument coroutine factory (called afresh for each attempt).
        attempts: total attempts including the first (>= 1).
        base_delay_s, max_delay_s: backoff is ``base * 2**n`` plus up to ``base`` of
            jitter, capped at ``max_delay_s``.
        retry_on: exception classes worth retrying; any other error is raised at once.
        sleep: the sleep function (tests pass a fake one; a node passes one that
            raises when it stops, so a stop never waits out a backoff).
        max_retry_after_s: an error asking to wait longer than this (``Retry-After``)
            is raised at once instead of waited out (default: always wait).

    Raises:
        The last error once ``attempts`` are spent, or the first non-retryable one.
    """
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=_WaitBackoffOrRetryAfter(base_delay_s, max_delay_s),
        retry=tenacity.retry_if_exception(
            lambda exc: (
                isinstance(exc, retry_on)
                and (
                    max_retry_after_s is None
                    or (getattr(exc, "retry_after_s", None) or 0) <= max_retry_after_s
                )
            )
        ),
        sleep=sleep,
        reraise=True,
    )
    return await retrying(call)


BreakerListener = Callable[[str, BreakerState, BreakerState, str], Awaitable[None] | None]


class CircuitBreaker:
    """A circuit breaker measured on ``clock``.

    Args:
        name: identifies the breaker in errors and events (``exchange_sync.binance``).
        failure_threshold: consecutive failures that open a closed breaker.
        reset_timeout_s: how long it stays open before one half-open probe.
        clock: time source (a :class:`~corec.core.clock.ReplayClock` in tests).
        on_change: called as ``on_change(name, previous, current, reason)`` on every
            transition; may be a coroutine function.

    Use :meth:`call` to guard an awaitable, or :meth:`before_call` /
    :meth:`record_success` / :meth:`record_failure` around your own code.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 3,
        reset_timeout_s: float = 900.0,
        clock: Clock | None = None,
        on_change: BreakerListener | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout_ns = int(reset_timeout_s * NS_PER_S)
        self._clock = clock or SystemClock()
        self._on_change = on_change
        self.state: BreakerState = "closed"
        self.consecutive_failures = 0
        self.opened_at_ns: int | None = None
        self._probe_in_flight = False

    def retry_in_s(self) -> float:
        """Seconds until an open breaker allows its probe (0 when not open)."""
        if self.state != "open" or self.opened_at_ns is None:
            return 0.0
        left = self.opened_at_ns + self.reset_timeout_ns - self._clock.now_ns()
        return max(0.0, left / NS_PER_S)

    async def before_call(self) -> None:
        """Allow or refuse a call now.

        Raises:
            CircuitOpenError: the breaker is open, or half-open with its probe running.
        """
        if self.state == "open":
            if self.retry_in_s() > 0:
                raise CircuitOpenError(self.name, self.retry_in_s())
            await self._move("half_open", "reset timeout elapsed; probing")
        if self.state == "half_open":
            if self._probe_in_flight:
                raise CircuitOpenError(self.name, 0.0)
            self._probe_in_flight = True

    async def record_success(self) -> None:
        """A guarded call succeeded: reset the count; a half-open probe closes it."""
        self.consecutive_failures = 0
        self._probe_in_flight = False
        if self.state != "closed":
            await self._move("closed", "probe succeeded")

    async def record_failure(self, error: BaseException | str) -> None:
        """A guarded call failed: count it; open on the threshold or a failed probe."""
        self._probe_in_flight = False
        self.consecutive_failures += 1
        reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        if self.state == "half_open" or (
            self.state == "closed" and self.consecutive_failures >= self.failure_threshold
        ):
            self.opened_at_ns = self._clock.now_ns()
            await self._move("open", reason)

    async def call(self, call: Callable[[], Awaitable[T]]) -> T:
        """Await ``call()`` through the breaker.

        Raises:
            CircuitOpenError: the breaker refused the call (it was not made).
            Whatever ``call()`` raised (after counting it as a failure).
        """
        await self.before_call()
        try:
            result = await call()
        except Exception as exc:
            await self.record_failure(exc)
            raise
        except BaseException:  # cancelled (e.g. wait_for timed out): free the probe slot
            self._probe_in_flight = False
            raise
        await self.record_success()
        return result

    async def _move(self, new: BreakerState, reason: str) -> None:
        previous = self.state
        if previous == new:
            return
        self.state = new
        if self._on_change is not None:
            outcome = self._on_change(self.name, previous, new, reason)
            if asyncio.iscoroutine(outcome):
                await outcome


def rate_limiter(max_rate: float, time_period_s: float = 1.0) -> AsyncLimiter:
    """A shared leaky-bucket limiter: ``async with limiter:`` before each call.

    Args:
        max_rate: acquisitions allowed per ``time_period_s``.
        time_period_s: the bucket's period in seconds.
    """
    return AsyncLimiter(max_rate, time_period_s)
