"""The resilience kit: retry by exception class, the circuit breaker, the rate limiter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from corec.core.clock import NS_PER_S, ReplayClock
from corec.core.errors import (
    CircuitOpenError,
    PermanentExchangeError,
    TemporaryExchangeError,
)
from corec.core.resilience import CircuitBreaker, rate_limiter, retry

T0_NS = 1_641_038_400 * NS_PER_S
BREAKER = "exchange_sync.binance"


class FakeSleep:
    """Records the delays ``retry`` asks for, without sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay_s: float) -> None:
        self.delays.append(delay_s)


def flaky(failures: list[BaseException], result: str = "tickers") -> tuple[Callable, list[int]]:
    """A call that raises ``failures`` in turn, then returns ``result``; counts calls."""
    calls = [0]

    async def call() -> str:
        calls[0] += 1
        if failures:
            raise failures.pop(0)
        return result

    return call, calls


# -- retry ----------------------------------------------------------------------------
async def test_retry_retries_temporary_errors_and_succeeds() -> None:
    sleep = FakeSleep()
    call, calls = flaky(
        [TemporaryExchangeError("binance", "502"), TemporaryExchangeError("binance", "timeout")]
    )
    assert await retry(call, attempts=4, base_delay_s=0.5, sleep=sleep) == "tickers"
    assert calls[0] == 3
    assert len(sleep.delays) == 2
    assert all(0 < d <= 30.0 for d in sleep.delays)


async def test_retry_stops_after_attempts_and_raises_the_last_error() -> None:
    sleep = FakeSleep()
    errors = [TemporaryExchangeError("okx", f"503 #{n}") for n in range(5)]
    call, calls = flaky(list(errors))
    with pytest.raises(TemporaryExchangeError) as caught:
        await retry(call, attempts=3, sleep=sleep)
    assert caught.value is errors[2]
    assert calls[0] == 3
    assert len(sleep.delays) == 2


async def test_retry_never_retries_permanent_errors() -> None:
    sleep = FakeSleep()
    error = PermanentExchangeError("kraken", "invalid API key")
    call, calls = flaky([error])
    with pytest.raises(PermanentExchangeError) as caught:
        await retry(call, attempts=5, sleep=sleep)
    assert caught.value is error
    assert calls[0] == 1
    assert sleep.delays == []


async def test_retry_does_not_retry_other_errors_by_default() -> None:
    sleep = FakeSleep()
    call, calls = flaky([KeyError("bid")])
    with pytest.raises(KeyError):
        await retry(call, attempts=5, sleep=sleep)
    assert calls[0] == 1


async def test_retry_on_other_classes() -> None:
    sleep = FakeSleep()
    call, calls = flaky([ConnectionResetError("peer")])
    assert await retry(call, retry_on=(OSError,), sleep=sleep) == "tickers"
    assert calls[0] == 2


async def test_retry_waits_at_least_retry_after() -> None:
    sleep = FakeSleep()
    call, _ = flaky(
        [
            TemporaryExchangeError("binance", "429", retry_after_s=7.5),
            TemporaryExchangeError("binance", "418", retry_after_s=120),
        ]
    )
    await retry(call, attempts=3, base_delay_s=0.001, max_delay_s=1.0, sleep=sleep)
    assert sleep.delays[0] >= 7.5
    assert sleep.delays[1] >= 120  # Retry-After beats the backoff cap


async def test_retry_backoff_grows_and_is_capped() -> None:
    sleep = FakeSleep()
    call, _ = flaky([TemporaryExchangeError("bybit", "5xx") for _ in range(6)])
    await retry(call, attempts=7, base_delay_s=0.01, max_delay_s=2.0, sleep=sleep)
    assert len(sleep.delays) == 6
    assert all(0 < d <= 2.0 for d in sleep.delays)
    # base × 2**n plus jitter below 1 s: the first wait is short
    assert sleep.delays[0] < 1.02


async def test_retry_needs_one_attempt() -> None:
    call, calls = flaky([])
    with pytest.raises(ValueError, match="attempts"):
        await retry(call, attempts=0)
    assert calls[0] == 0


async def test_retry_with_the_real_sleep() -> None:
    call, calls = flaky([TemporaryExchangeError("okx", "timeout")])
    started = time.monotonic()
    assert await retry(call, base_delay_s=0.001, max_delay_s=0.01) == "tickers"
    assert calls[0] == 2
    assert time.monotonic() - started < 1


# -- circuit breaker ------------------------------------------------------------------
Change = tuple[str, str, str, str]


@pytest.fixture
def clock() -> ReplayClock:
    return ReplayClock(T0_NS)


@pytest.fixture
def changes() -> list[Change]:
    return []


@pytest.fixture
def breaker(clock: ReplayClock, changes: list[Change]) -> CircuitBreaker:
    async def on_change(name: str, previous: str, current: str, reason: str) -> None:
        changes.append((name, previous, current, reason))

    return CircuitBreaker(
        BREAKER, failure_threshold=3, reset_timeout_s=60, clock=clock, on_change=on_change
    )


def failing(error: Exception) -> Callable[[], Awaitable[str]]:
    async def call() -> str:
        raise error

    return call


async def ok() -> str:
    return "ok"


async def open_it(breaker: CircuitBreaker) -> None:
    for n in range(3):
        with pytest.raises(TemporaryExchangeError):
            await breaker.call(failing(TemporaryExchangeError("binance", f"503 #{n}")))


async def test_breaker_opens_after_three_consecutive_failures(
    breaker: CircuitBreaker, changes: list[Change]
) -> None:
    for n in range(2):
        with pytest.raises(TemporaryExchangeError):
            await breaker.call(failing(TemporaryExchangeError("binance", f"503 #{n}")))
    assert breaker.state == "closed"
    assert breaker.consecutive_failures == 2
    assert changes == []
    with pytest.raises(TemporaryExchangeError):
        await breaker.call(failing(TemporaryExchangeError("binance", "503 #2")))
    assert breaker.state == "open"
    assert breaker.opened_at_ns == T0_NS
    assert changes == [
        (BREAKER, "closed", "open", "TemporaryExchangeError: binance: 503 #2"),
    ]


async def test_success_resets_the_failure_count(breaker: CircuitBreaker) -> None:
    for _ in range(2):
        with pytest.raises(ValueError):
            await breaker.call(failing(ValueError("bad json")))
    assert await breaker.call(ok) == "ok"
    assert breaker.consecutive_failures == 0
    for _ in range(2):
        with pytest.raises(ValueError):
            await breaker.call(failing(ValueError("bad json")))
    assert breaker.state == "closed"


async def test_open_breaker_refuses_without_calling(
    breaker: CircuitBreaker, clock: ReplayClock
) -> None:
    await open_it(breaker)
    made = []

    async def call() -> str:
        made.append(1)
        return "ok"

    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(call)
    assert caught.value.name == BREAKER
    assert caught.value.retry_in_s == 60.0
    assert breaker.retry_in_s() == 60.0
    clock.advance_to(T0_NS + 59 * NS_PER_S)
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(call)
    assert caught.value.retry_in_s == 1.0
    assert made == []
    assert breaker.state == "open"


async def test_half_open_after_reset_timeout_and_success_closes(
    breaker: CircuitBreaker, clock: ReplayClock, changes: list[Change]
) -> None:
    await open_it(breaker)
    clock.advance_to(T0_NS + 60 * NS_PER_S)
    assert breaker.retry_in_s() == 0.0
    assert await breaker.call(ok) == "ok"
    assert breaker.state == "closed"
    assert breaker.consecutive_failures == 0
    assert changes == [
        (BREAKER, "closed", "open", "TemporaryExchangeError: binance: 503 #2"),
        (BREAKER, "open", "half_open", "reset timeout elapsed; probing"),
        (BREAKER, "half_open", "closed", "probe succeeded"),
    ]
    assert await breaker.call(ok) == "ok"  # closed again: calls flow
    assert len(changes) == 3


async def test_failed_probe_reopens(
    breaker: CircuitBreaker, clock: ReplayClock, changes: list[Change]
) -> None:
    await open_it(breaker)
    probe_at = T0_NS + 61 * NS_PER_S
    clock.advance_to(probe_at)
    with pytest.raises(TemporaryExchangeError):
        await breaker.call(failing(TemporaryExchangeError("binance", "still 503")))
    assert breaker.state == "open"
    assert breaker.opened_at_ns == probe_at
    assert breaker.retry_in_s() == 60.0  # a full reset timeout from the failed probe
    assert changes[1:] == [
        (BREAKER, "open", "half_open", "reset timeout elapsed; probing"),
        (BREAKER, "half_open", "open", "TemporaryExchangeError: binance: still 503"),
    ]
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)


async def test_half_open_allows_one_probe_only(breaker: CircuitBreaker, clock: ReplayClock) -> None:
    await open_it(breaker)
    clock.advance_to(T0_NS + 60 * NS_PER_S)
    release = asyncio.Event()
    probes: list[int] = []

    async def probe() -> str:
        probes.append(1)
        await release.wait()
        return "ok"

    first = asyncio.create_task(breaker.call(probe))
    await asyncio.sleep(0)
    assert breaker.state == "half_open"
    with pytest.raises(CircuitOpenError) as caught:
        await asyncio.wait_for(breaker.call(probe), 2)  # a second probe would hang
    assert caught.value.retry_in_s == 0.0
    release.set()
    assert await first == "ok"
    assert probes == [1]
    assert breaker.state == "closed"


async def test_cancelled_probe_frees_the_probe_slot(
    breaker: CircuitBreaker, clock: ReplayClock
) -> None:
    # e.g. ``asyncio.wait_for(breaker.call(fetch), 10)`` timing out during the probe
    await open_it(breaker)
    clock.advance_to(T0_NS + 60 * NS_PER_S)

    async def hangs() -> str:
        await asyncio.sleep(30)
        return "never"

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(breaker.call(hangs), timeout=0.01)
    # the breaker must not stay half-open with a probe "in flight" forever
    assert await breaker.call(ok) == "ok"
    assert breaker.state == "closed"


async def test_record_api_and_sync_listener(clock: ReplayClock) -> None:
    seen: list[Change] = []
    breaker = CircuitBreaker(
        "market_monitor.feed",
        failure_threshold=1,
        reset_timeout_s=5,
        clock=clock,
        on_change=lambda *args: seen.append(args),  # type: ignore[arg-type]
    )
    await breaker.before_call()
    await breaker.record_failure("stale for 400 s")
    assert breaker.state == "open"
    clock.advance_to(T0_NS + 5 * NS_PER_S)
    await breaker.before_call()
    await breaker.record_success()
    assert seen == [
        ("market_monitor.feed", "closed", "open", "stale for 400 s"),
        ("market_monitor.feed", "open", "half_open", "reset timeout elapsed; probing"),
        ("market_monitor.feed", "half_open", "closed", "probe succeeded"),
    ]


def test_breaker_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("x", failure_threshold=0)


# -- rate limiter ---------------------------------------------------------------------
async def test_rate_limiter_bounds_the_rate() -> None:
    limiter = rate_limiter(4, 0.4)  # 4 per 0.4 s = 10 per second
    acquired: list[float] = []
    started = time.monotonic()

    async def one() -> None:
        async with limiter:
            acquired.append(time.monotonic() - started)

    tasks = [asyncio.create_task(one()) for _ in range(8)]
    await asyncio.sleep(0.02)
    assert len(acquired) == 4  # the burst; the next slot frees after 0.1 s
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    # 4 more at 10/s need about 0.4 s; loose bounds for a busy CI machine
    assert 0.3 <= elapsed < 5
    assert len(acquired) == 8


async def test_rate_limiter_lets_a_slow_caller_through() -> None:
    limiter = rate_limiter(100, 1.0)
    started = time.monotonic()
    for _ in range(50):
        async with limiter:
            pass
    assert time.monotonic() - started < 0.5
    assert limiter.max_rate == 100
    assert limiter.time_period == 1.0
