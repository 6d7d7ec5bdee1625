"""Delivery of notifications: a persisted outbox per receiver, sent through Apprise with
retries, backoff, ``retry_after`` and a circuit breaker, never blocking the caller.

How it works
------------
- :meth:`Dispatcher.enqueue` stores the notification in the outbox (:mod:`.outbox`) and
  wakes its receiver's worker; it returns as soon as the row is committed. The built-in
  ``log`` receiver is served right there: the rendered notification goes to structlog
  (``corec.alerts.notify``) at the level of its severity and is stored as sent.
- One asyncio task per receiver takes the receiver's due entries, oldest first, and sends
  each to every URL of the receiver. A receiver is *sent* when all its URLs accepted the
  notification; a URL that accepted is not sent again on the next attempt (this progress
  is kept in memory only: after a restart, a partly delivered notification goes to all
  the receiver's URLs again).
- A failed attempt is retried after an exponential backoff with jitter
  (``backoff_initial_s * 2**(attempt-1)``, capped at ``backoff_max_s``, then scaled by a
  random factor in [0.5, 1]); after a 429 the wait is at least the ``retry_after`` the
  service asked for. After ``max_attempts`` sends the entry is ``failed`` (outcome
  ``gave_up``).
- Each receiver has a :class:`~corec.core.resilience.CircuitBreaker` (``breaker_failures``
  consecutive failed attempts open it; after ``breaker_reset_s`` one probe is let
  through). While it is open, due entries are not sent: each gets a ``breaker_open``
  attempt row (not counted against ``max_attempts``) and is due again at the probe time.
  Transitions are reported through ``on_breaker_change``.
- A *critical* notification whose send gave up, or whose receiver's breaker is open,
  goes to the fallback file (one JSON line) and to the log at CRITICAL when no other
  external receiver has delivered, or is still trying (pending, breaker not open) to
  deliver, any of its firing alerts, and none of them is in the fallback file yet. Its
  status becomes ``fallback``. The check, the file write and the status change run under
  one lock, so two receivers failing together write the line once.
- Every attempt is one ``delivery_attempts`` row, written in the same transaction as the
  entry's new status (``sent`` rows included), and then passed to ``on_attempt`` as an
  :class:`AttemptOutcome` (the plugin publishes it on ``alert_data``).

Exactly once across restarts
----------------------------
Pending rows survive a restart: :meth:`Dispatcher.start` starts the workers, which find
them due and send them. An entry is marked ``sent`` only in the transaction that stores
its successful attempt (guarded by ``status = 'pending'``), so a delivered entry is never
sent again. The one window for a duplicate is a crash (or a kill) after a service accepted
the notification and before that transaction commits; then it is sent again after the
restart (at-least-once, as the bus). :meth:`Dispatcher.stop` waits up to ``timeout_s`` for
sends in flight, so a clean stop does not open that window. A send that times out may
still complete inside Apprise's worker thread; it is counted as failed and retried, which
can also duplicate.

How the HTTP status and ``retry_after`` are learnt from Apprise
---------------------------------------------------------------
Apprise 2.x's ``notify``/``async_notify`` return an ``AppriseResult``: per service a
``NotifyResult`` with its ``NotifyAttempt`` list and the log entries captured *during
that service's send* (``log_level=`` selects the level captured). That is the documented
way to learn more than a bool. Apprise's HTTP plugins log a failure as
``"Failed to send <Service> notification: ..., error=<status>."`` at WARNING and the
response body as ``"Response Details: ..."`` at DEBUG. So each URL's plugin instance is
given a private logger (``corec.alert_manager.apprise.<receiver>.<n>``: level DEBUG,
``propagate=False``, a ``NullHandler``) and each send asks for ``log_level=DEBUG``:

- the status is the ``error=NNN`` of the WARNING entries;
- ``retry_after`` is, in that order: ``"retry_after": N`` in the captured response body
  (Discord's 429 body, Telegram's ``parameters.retry_after``), ``retry after N`` in a
  WARNING (Telegram's description), or, for Discord, the ``X-RateLimit-Reset`` header
  that the plugin itself keeps in ``ratelimit_reset`` when ``ratelimit_remaining`` is 0;
- the error stored and published is the WARNING entries only, scrubbed of the
  receiver's secrets.

The private logger matters for secrets: Apprise's DEBUG lines carry the full service
URL (webhook token, bot token); they are captured into the result and parsed, and never
reach the application's log handlers, and the shared ``apprise`` logger's level is not
touched. Discord's plugin retries a 429 once by itself (immediately, or after sleeping
until ``X-RateLimit-Reset`` when that header is an integer), so one attempt can be two
HTTP requests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog

from corec.core.clock import NS_PER_S
from corec.core.errors import CircuitOpenError
from corec.core.resilience import BreakerListener, CircuitBreaker
from corec.core.store import Store
from corec.plugins.alert_manager.config import LOG_RECEIVER, DeliveryConfig
from corec.plugins.alert_manager.outbox import (
    FAILED,
    FALLBACK,
    PENDING,
    SENT,
    AttemptRow,
    Outbox,
    OutboxEntry,
)
from corec.plugins.alert_manager.receivers import Receiver, apprise_module
from corec.plugins.alert_manager.render import Rendered, render, utc
from corec.plugins.alert_manager.types import Notification

log = structlog.get_logger("corec.alert_manager.delivery")
notify_log = structlog.get_logger("corec.alerts.notify")

LOG_LEVEL_BY_SEVERITY = {
    "critical": "critical",
    "high": "error",
    "medium": "warning",
    "low": "info",
}
BATCH = 50
"""Due entries a worker takes per read."""
_MIN_WAIT_S = 0.005
_STATUS_RE = re.compile(r"\berror=(\d{3})\b")
_BODY_RETRY_AFTER_RE = re.compile(r"[\"']retry_after[\"']\s*:\s*([0-9]+(?:\.[0-9]+)?)")
_TEXT_RETRY_AFTER_RE = re.compile(r"retry after (\d+(?:\.\d+)?)", re.IGNORECASE)
_q3 = Decimal("0.001")

AttemptCallback = Callable[["AttemptOutcome"], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """One delivery attempt as reported to ``on_attempt`` (the plugin publishes it as
    ``NotificationAttempted`` on ``alert_data``).

    Fields:
        notification_id, receiver: the outbox entry; ``attempt``: its send number (1 for
            the first; a ``breaker_open`` refusal names the send it refused).
        outcome: ``sent``, ``failed`` (will retry), ``rate_limited`` (429, will retry),
            ``breaker_open`` (not tried), ``gave_up`` (no attempts left) or ``fallback``
            (written to the local file).
        severity: the notification's; ``alert_ids``: its alerts (firing, then resolved).
        error: what went wrong, never a URL or a secret.
        retry_after_s: what a 429 asked for (seconds, 3 decimals).
        duration_ms: the send's wall time (ms, 3 decimals; 0 when nothing was sent).
    """

    notification_id: str
    receiver: str
    attempt: int
    outcome: str
    severity: str
    alert_ids: tuple[str, ...]
    error: str | None = None
    retry_after_s: Decimal | None = None
    duration_ms: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one send to one URL (or to all of a receiver's URLs).

    Fields:
        ok: accepted; ``status_code``: the HTTP status Apprise logged (``None`` when
            none: SMTP, timeouts, connection errors); ``retry_after_s``: what a 429
            asked for; ``error``: scrubbed text (``None`` when ok).
    """

    ok: bool
    status_code: int | None = None
    retry_after_s: float | None = None
    error: str | None = None


def body_format_for(instance: Any) -> str:
    """The body format to send to an Apprise plugin instance: ``html`` for email
    (Apprise then sends a plain-text and an HTML part), ``markdown`` for services that
    render it (Discord, Telegram, Slack ...), ``text`` otherwise (JSON, SMS ...)."""
    apprise = apprise_module()
    from apprise.plugins.email.base import NotifyEmail

    if isinstance(instance, NotifyEmail):
        return apprise.NotifyFormat.HTML.value
    formats = instance.notify_format
    formats = formats if isinstance(formats, tuple | list) else (formats,)
    if apprise.NotifyFormat.MARKDOWN in formats:
        return apprise.NotifyFormat.MARKDOWN.value
    return apprise.NotifyFormat.TEXT.value


def _notify_type(notification: Notification) -> str:
    if notification.test:
        return "info"
    if not notification.firing:
        return "success"
    return {"critical": "failure", "high": "failure", "medium": "warning"}.get(
        notification.severity, "info"
    )


class AppriseTarget:
    """One Apprise URL of a receiver, with its own plugin instance (rate-limit state
    persists between sends) and its own private logger (see the module docstring).

    Args:
        receiver: the receiver (for scrubbing errors).
        index: the URL's position in ``receiver.urls``.

    Raises:
        ValueError: Apprise cannot build a service from the URL.
    """

    def __init__(self, receiver: Receiver, index: int) -> None:
        apprise = apprise_module()
        self.receiver = receiver
        self.index = index
        self.redacted = receiver.redacted[index]
        asset = apprise.AppriseAsset(storage_mode="memory")
        instance = apprise.Apprise.instantiate(receiver.urls[index], asset=asset)
        if instance is None:
            raise ValueError(
                f"receiver {receiver.name}: URL #{index + 1} ({self.redacted}) is not usable by Apprise"
            )
        logger = logging.getLogger(f"corec.alert_manager.apprise.{receiver.name}.{index}")
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())
        instance.logger = logger
        self.instance = instance
        self.body_format = body_format_for(instance)
        self.apprise = apprise.Apprise(asset=asset)
        self.apprise.add(instance)

    def _body(self, rendered: Rendered) -> str:
        if self.body_format == "html":
            return rendered.html
        if self.body_format == "markdown":
            return rendered.markdown
        return rendered.text

    async def send(self, rendered: Rendered, notify_type: str, timeout_s: float) -> SendResult:
        """Send ``rendered`` through Apprise within ``timeout_s``; never raises for a
        delivery problem (it is in the result)."""
        try:
            result = await asyncio.wait_for(
                self.apprise.async_notify(
                    body=self._body(rendered),
                    title=rendered.title,
                    body_format=self.body_format,
                    notify_type=notify_type,
                    timeout=timeout_s,
                    log_level=logging.DEBUG,
                ),
                timeout_s + 2.0,
            )
        except TimeoutError:
            return SendResult(False, error=f"{self.redacted}: no answer within {timeout_s:g} s")
        try:
            return self._interpret(result, timeout_s)
        finally:
            result.close()

    def _interpret(self, result: Any, timeout_s: float) -> SendResult:
        apprise = apprise_module()
        if bool(result):
            return SendResult(True)
        services = list(result)
        entries = [e for service in services for e in service.logs()]
        warnings = [e.message for e in entries if e.level in ("WARNING", "ERROR", "CRITICAL")]
        codes = [int(c) for w in warnings for c in _STATUS_RE.findall(w)]
        status = 429 if 429 in codes else (codes[-1] if codes else None)
        retry_after = None
        if status == 429:
            retry_after = self._retry_after([e.message for e in entries], warnings)
        if result.status == apprise.AppriseResultStatus.TIMEOUT or any(
            s.status == apprise.AppriseResultStatus.TIMEOUT for s in services
        ):
            error = f"no answer within {timeout_s:g} s"
        elif warnings:
            error = " ".join(dict.fromkeys(w.strip() for w in warnings))
        elif not services:
            error = f"Apprise did not send ({result.status.name})"
        else:
            error = "Apprise reported a failure without a reason"
        return SendResult(
            False,
            status_code=status,
            retry_after_s=retry_after,
            error=f"{self.redacted}: {self.receiver.scrub(error)}",
        )

    def _retry_after(self, messages: list[str], warnings: list[str]) -> float | None:
        for text in messages:
            if "Response Details" in text:
                found = _BODY_RETRY_AFTER_RE.search(text)
                if found:
                    return float(found.group(1))
        for text in warnings:
            found = _TEXT_RETRY_AFTER_RE.search(text)
            if found:
                return float(found.group(1))
        remaining = getattr(self.instance, "ratelimit_remaining", None)
        reset = getattr(self.instance, "ratelimit_reset", None)
        if isinstance(remaining, int | float) and remaining <= 0 and isinstance(reset, datetime):
            left = (reset.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()
            if left > 0:
                return left
        return None


class _SendFailed(Exception):
    """A send that did not go through (counted by the breaker as a failure)."""

    def __init__(self, result: SendResult) -> None:
        super().__init__(result.error or "failed")
        self.result = result


class _FnClock:
    """A :class:`~corec.core.clock.Clock` over a ``now_ns`` function (for the breakers)."""

    is_simulated = False

    def __init__(self, now_ns: Callable[[], int]) -> None:
        self._now_ns = now_ns

    def now_ns(self) -> int:
        return self._now_ns()


def _alert_ids(notification: Notification) -> tuple[str, ...]:
    return tuple(a.alert_id for a in (*notification.firing, *notification.resolved))


def _ms(seconds: float) -> Decimal:
    return Decimal(str(seconds * 1000)).quantize(_q3)


def _s3(seconds: float | None) -> Decimal | None:
    return None if seconds is None else Decimal(str(seconds)).quantize(_q3)


class Dispatcher:
    """Delivers notifications to their receivers (see the module docstring).

    Args:
        store: the plugin's store (tables ``notifications`` and ``delivery_attempts``).
        receivers: the resolved external receivers by name
            (:func:`~corec.plugins.alert_manager.receivers.resolve_receivers`); ``log``
            is built in.
        config: retries, backoff, breakers, timeouts and polling.
        fallback_file: where undeliverable critical alerts are appended (JSON lines);
            its folder is created on first use.
        on_attempt: called with each :class:`AttemptOutcome` after it is stored (may be
            a coroutine function; its errors are logged, never raised).
        on_breaker_change: a receiver's breaker moved: ``(name, previous, current,
            reason)``, ``name`` being ``alert_manager.<receiver>``.
        now_ns: UTC nanoseconds (the node clock); ``sleep``: how a worker waits when idle
            (it also wakes on :meth:`enqueue`); ``rng``: a [0, 1) source for the jitter.

    Raises:
        ValueError: a receiver URL Apprise cannot use (resolution checks them first).
    """

    def __init__(
        self,
        store: Store,
        receivers: Mapping[str, Receiver],
        config: DeliveryConfig,
        *,
        fallback_file: Path,
        on_attempt: AttemptCallback | None = None,
        on_breaker_change: BreakerListener | None = None,
        now_ns: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.outbox = Outbox(store)
        self.receivers = dict(receivers)
        self.config = config
        self.fallback_file = Path(fallback_file)
        self._on_attempt = on_attempt
        self._now_ns = now_ns
        self._sleep = sleep
        self._rng = rng
        clock = _FnClock(now_ns)
        self.breakers = {
            name: CircuitBreaker(
                f"alert_manager.{name}",
                failure_threshold=config.breaker_failures,
                reset_timeout_s=config.breaker_reset_s,
                clock=clock,
                on_change=on_breaker_change,
            )
            for name in self.receivers
        }
        self._targets = {
            name: [AppriseTarget(r, i) for i in range(len(r.urls))]
            for name, r in self.receivers.items()
        }
        self._wake = {name: asyncio.Event() for name in self.receivers}
        self._delivered_urls: dict[str, set[int]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._fallback_lock = asyncio.Lock()
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Start one worker per receiver; pending entries from before a restart are
        delivered by them. Pending entries of receivers that are no longer configured
        stay pending (and are logged)."""
        self._stopping = False
        for name in self.receivers:
            if name not in self._tasks or self._tasks[name].done():
                self._tasks[name] = asyncio.create_task(
                    self._worker(name), name=f"alert_manager.delivery.{name}"
                )
        orphans = {
            r: n for r, n in (await self.outbox.pending_counts()).items() if r not in self.receivers
        }
        if orphans:
            log.warning("pending notifications for receivers not configured", pending=orphans)

    async def stop(self) -> None:
        """Stop the workers: sends in flight may finish (up to ``timeout_s``), nothing
        new starts; pending entries stay in the outbox for the next start."""
        self._stopping = True
        for event in self._wake.values():
            event.set()
        tasks = list(self._tasks.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.config.timeout_s + 3.0)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    # -- the caller's side ---------------------------------------------------------------
    async def enqueue(self, notification: Notification) -> None:
        """Store ``notification`` and wake its receiver's worker; returns once stored.

        The ``log`` receiver is served at once (logged, stored as sent). A receiver that
        is not configured fails the entry at once (``gave_up``; a critical one may go to
        the fallback file). Enqueueing an id that is already stored does nothing.
        """
        now = self._now_ns()
        if notification.receiver == LOG_RECEIVER:
            await self._to_log(notification, now)
            return
        stored = await self.outbox.enqueue(notification, now_ns=now)
        if not stored:
            return
        if notification.receiver not in self.receivers:
            entry = await self.outbox.get(notification.notification_id)
            assert entry is not None
            error = f"receiver {notification.receiver!r} is not configured"
            row = AttemptRow(
                notification.notification_id, notification.receiver, 1, now, "gave_up", error
            )
            await self._conclude(entry, [row], final=True, attempts=1, next_ns=now, error=error)
            return
        self._wake[notification.receiver].set()

    async def _to_log(self, notification: Notification, now: int) -> None:
        if await self.outbox.get(notification.notification_id) is not None:
            return  # already logged
        started = time.perf_counter()
        rendered = render(notification)
        level = LOG_LEVEL_BY_SEVERITY[notification.severity] if notification.firing else "info"
        getattr(notify_log, level)(
            rendered.title,
            receiver=LOG_RECEIVER,
            notification_id=notification.notification_id,
            severity=notification.severity,
            body=rendered.text,
        )
        duration = _ms(time.perf_counter() - started)
        row = AttemptRow(
            notification.notification_id, LOG_RECEIVER, 1, now, SENT, duration_ms=duration
        )
        if await self.outbox.enqueue(notification, now_ns=now, done=(SENT, [row])):
            await self._report(notification, row)

    # -- status --------------------------------------------------------------------------
    def breaker_states(self) -> dict[str, str]:
        """Each receiver's breaker state (``closed``, ``open`` or ``half_open``)."""
        return {name: b.state for name, b in self.breakers.items()}

    async def pending_counts(self) -> dict[str, int]:
        """Pending outbox entries per receiver."""
        return await self.outbox.pending_counts()

    # -- the workers ---------------------------------------------------------------------
    async def _worker(self, name: str) -> None:
        wake = self._wake[name]
        poll_s = self.config.poll_interval_s
        while not self._stopping:
            wake.clear()
            wait_s = poll_s
            try:
                entries = await self.outbox.due(name, self._now_ns(), limit=BATCH)
                for entry in entries:
                    if self._stopping:
                        return
                    await self._deliver(name, entry)
                if len(entries) == BATCH:
                    continue
                next_due = await self.outbox.next_due_ns(name)
                if next_due is not None:
                    wait_s = min(poll_s, max(_MIN_WAIT_S, (next_due - self._now_ns()) / NS_PER_S))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a store hiccup must not end the worker
                log.error(
                    "delivery worker failed; retrying",
                    receiver=name,
                    error=self.receivers[name].scrub(f"{type(exc).__name__}: {exc}"),
                )
            if not self._stopping:
                await self._wait(wake, wait_s)

    async def _wait(self, wake: asyncio.Event, seconds: float) -> None:
        if wake.is_set():
            return
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        waiter = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waiter):
                task.cancel()
            await asyncio.gather(sleeper, waiter, return_exceptions=True)

    def _backoff_s(self, attempt: int) -> float:
        base = self.config.backoff_initial_s * 2 ** min(attempt - 1, 60)
        return min(self.config.backoff_max_s, base) * (0.5 + 0.5 * self._rng())

    async def _deliver(self, name: str, entry: OutboxEntry) -> None:
        notification = entry.notification
        nid = notification.notification_id
        breaker = self.breakers[name]
        attempt = entry.attempts + 1
        receiver = self.receivers[name]

        async def send() -> SendResult:
            result = await self._send_all(name, notification)
            if not result.ok:
                raise _SendFailed(result)
            return result

        started = time.perf_counter()
        try:
            result = await breaker.call(send)
        except CircuitOpenError as exc:
            now = self._now_ns()
            retry_in_s = max(exc.retry_in_s, _MIN_WAIT_S)
            error = f"circuit breaker open; next probe in {retry_in_s:.1f} s"
            row = AttemptRow(nid, name, attempt, now, "breaker_open", error)
            await self._conclude(
                entry,
                [row],
                final=False,
                attempts=entry.attempts,
                next_ns=now + int(retry_in_s * NS_PER_S),
                error=error,
                check_fallback=True,
            )
            return
        except _SendFailed as failed:
            result = failed.result
        except Exception as exc:  # a bug in rendering or in a plugin: a failed attempt
            result = SendResult(False, error=receiver.scrub(f"{type(exc).__name__}: {exc}"))
        duration = _ms(time.perf_counter() - started)
        now = self._now_ns()
        if result.ok:
            row = AttemptRow(nid, name, attempt, now, SENT, duration_ms=duration)
            await self._conclude(entry, [row], final=True, attempts=attempt, next_ns=now, sent=True)
            return
        retry_after = _s3(result.retry_after_s)
        if attempt >= self.config.max_attempts:
            row = AttemptRow(
                nid, name, attempt, now, "gave_up", result.error, retry_after, duration
            )
            await self._conclude(
                entry, [row], final=True, attempts=attempt, next_ns=now, error=result.error
            )
            return
        delay_s = self._backoff_s(attempt)
        if result.retry_after_s is not None:
            delay_s = max(delay_s, result.retry_after_s)
        outcome = "rate_limited" if result.status_code == 429 else "failed"
        row = AttemptRow(nid, name, attempt, now, outcome, result.error, retry_after, duration)
        await self._conclude(
            entry,
            [row],
            final=False,
            attempts=attempt,
            next_ns=now + int(delay_s * NS_PER_S),
            error=result.error,
            check_fallback=breaker.state == "open",
        )

    async def _send_all(self, name: str, notification: Notification) -> SendResult:
        """Send to every URL of the receiver that has not accepted this notification yet."""
        nid = notification.notification_id
        rendered = render(notification)
        notify_type = _notify_type(notification)
        done = self._delivered_urls.setdefault(nid, set())
        failures: list[SendResult] = []
        for target in self._targets[name]:
            if target.index in done:
                continue
            result = await target.send(rendered, notify_type, self.config.timeout_s)
            if result.ok:
                done.add(target.index)
            else:
                failures.append(result)
        if not failures:
            self._delivered_urls.pop(nid, None)
            return SendResult(True)
        codes = [f.status_code for f in failures if f.status_code is not None]
        retry_afters = [f.retry_after_s for f in failures if f.retry_after_s is not None]
        return SendResult(
            False,
            status_code=429 if 429 in codes else (codes[0] if codes else None),
            retry_after_s=max(retry_afters) if retry_afters else None,
            error="; ".join(f.error or "failed" for f in failures),
        )

    # -- outcomes ------------------------------------------------------------------------
    async def _conclude(
        self,
        entry: OutboxEntry,
        rows: list[AttemptRow],
        *,
        final: bool,
        attempts: int,
        next_ns: int,
        error: str | None = None,
        sent: bool = False,
        check_fallback: bool = False,
    ) -> None:
        """Store ``rows`` and the entry's new state (one transaction) and report them.

        A failed critical entry (``final``, or ``check_fallback`` because its breaker is
        open) is checked for the fallback first, under the fallback lock.
        """
        notification = entry.notification
        nid = notification.notification_id
        now = self._now_ns()
        wants_check = (
            not sent
            and (final or check_fallback)
            and notification.severity == "critical"
            and bool(notification.firing)
        )
        if not wants_check:
            status = SENT if sent else (FAILED if final else PENDING)
            stored = await self.outbox.record(
                nid,
                rows,
                status=status,
                attempts=attempts,
                next_attempt_ts_ns=next_ns,
                done_ts_ns=now if final else None,
                last_error=error,
            )
            if stored:
                if final:
                    self._delivered_urls.pop(nid, None)
                await self._report_all(notification, rows)
            return
        async with self._fallback_lock:
            if await self._needs_fallback(entry):
                failed_receivers = await self._write_fallback(entry, error)
                rows = [
                    *rows,
                    AttemptRow(
                        nid,
                        entry.receiver,
                        rows[-1].attempt,
                        now,
                        "fallback",
                        f"every external receiver failed ({', '.join(failed_receivers)}); "
                        f"written to {self.fallback_file.name}",
                    ),
                ]
                status, final = FALLBACK, True
            else:
                status = FAILED if final else PENDING
            stored = await self.outbox.record(
                nid,
                rows,
                status=status,
                attempts=attempts,
                next_attempt_ts_ns=next_ns,
                done_ts_ns=now if final else None,
                last_error=error,
            )
        if stored:
            if final:
                self._delivered_urls.pop(nid, None)
            await self._report_all(notification, rows)

    def _still_trying(self, receiver: str) -> bool:
        breaker = self.breakers.get(receiver)
        return breaker is not None and breaker.state != "open"

    async def _needs_fallback(self, entry: OutboxEntry) -> bool:
        """True when some firing alert of ``entry`` has no other external receiver that
        delivered it or is still trying, and is not in the fallback file yet."""
        firing = [a.alert_id for a in entry.notification.firing]
        others = await self.outbox.containing(firing, exclude_id=entry.notification_id)
        for alert_id in firing:
            related = [o for o in others if alert_id in _alert_ids(o.notification)]
            if any(o.status == FALLBACK for o in related):
                continue
            if any(
                o.status == SENT or (o.status == PENDING and self._still_trying(o.receiver))
                for o in related
            ):
                continue
            return True
        return False

    async def _write_fallback(self, entry: OutboxEntry, error: str | None) -> list[str]:
        """Append the notification to the fallback file and log it at CRITICAL; return
        the receivers that failed it."""
        notification = entry.notification
        firing = [a.alert_id for a in notification.firing]
        others = await self.outbox.containing(firing, exclude_id=entry.notification_id)
        failed = sorted({entry.receiver, *(o.receiver for o in others if o.status != SENT)})
        rendered = render(notification)
        now = self._now_ns()
        line = {
            "ts": utc(now),
            "ts_ns": now,
            "notification_id": notification.notification_id,
            "receiver": notification.receiver,
            "failed_receivers": failed,
            "severity": notification.severity,
            "title": rendered.title,
            "text": rendered.text,
            "last_error": error,
            "alerts": [
                {
                    "alert_id": a.alert_id,
                    "name": a.name,
                    "severity": a.severity,
                    "message": a.message,
                    "labels": dict(a.labels),
                    "source": a.source,
                    "state": a.state,
                    "starts_ts_ns": a.starts_ts_ns,
                    "since": utc(a.starts_ts_ns),
                    "occurrences": a.occurrences,
                }
                for a in notification.firing
            ],
        }
        text = json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n"
        try:
            await asyncio.to_thread(self._append, text)
            written = True
        except OSError as exc:
            written = False
            log.error(
                "cannot write the fallback file", file=str(self.fallback_file), error=str(exc)
            )
        log.critical(
            f"undelivered critical alert: {rendered.title}",
            notification_id=notification.notification_id,
            receivers_failed=failed,
            alerts=[a.name for a in notification.firing],
            fallback_file=str(self.fallback_file) if written else None,
            body=rendered.text,
        )
        return failed

    def _append(self, text: str) -> None:
        self.fallback_file.parent.mkdir(parents=True, exist_ok=True)
        with self.fallback_file.open("a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    async def _report_all(self, notification: Notification, rows: list[AttemptRow]) -> None:
        for row in rows:
            await self._report(notification, row)

    async def _report(self, notification: Notification, row: AttemptRow) -> None:
        if row.outcome not in (SENT, "breaker_open"):
            log.warning(
                "notification not delivered",
                receiver=row.receiver,
                notification_id=row.notification_id,
                attempt=row.attempt,
                outcome=row.outcome,
                error=row.error,
                retry_after_s=None if row.retry_after_s is None else float(row.retry_after_s),
            )
        if self._on_attempt is None:
            return
        outcome = AttemptOutcome(
            notification_id=row.notification_id,
            receiver=row.receiver,
            attempt=row.attempt,
            outcome=row.outcome,
            severity=notification.severity,
            alert_ids=_alert_ids(notification),
            error=row.error,
            retry_after_s=row.retry_after_s,
            duration_ms=row.duration_ms,
        )
        try:
            returned = self._on_attempt(outcome)
            if asyncio.iscoroutine(returned):
                await returned
        except Exception as exc:
            log.error("on_attempt callback failed", error=f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one URL of a receiver did with a test notification.

    Fields:
        url: the redacted URL (scheme and host only); ``result``: the :class:`SendResult`;
        ``duration_ms``: how long the send took.
    """

    url: str
    result: SendResult
    duration_ms: Decimal


async def send_test(receiver: Receiver, now_ns: int, timeout_s: float) -> list[ProbeResult]:
    """Send one test notification (``[TEST] CoreC test notification``) to every URL of
    ``receiver``, once each, without the outbox, retries or breaker: what ``corec alerts
    test RECEIVER`` reports.

    Returns:
        one :class:`ProbeResult` per URL, in the receiver's order.
    """
    notification = Notification(
        notification_id=f"test-{now_ns}",
        receiver=receiver.name,
        group_key="test",
        group_labels={},
        severity="low",
        firing=(),
        resolved=(),
        created_ts_ns=now_ns,
        test=True,
    )
    rendered = render(notification)
    out = []
    for index in range(len(receiver.urls)):
        started = time.perf_counter()
        try:
            target = AppriseTarget(receiver, index)
        except ValueError as exc:
            out.append(
                ProbeResult(receiver.redacted[index], SendResult(False, error=str(exc)), _ms(0))
            )
            continue
        result = await target.send(rendered, _notify_type(notification), timeout_s)
        out.append(ProbeResult(target.redacted, result, _ms(time.perf_counter() - started)))
    return out
