"""Delivery of alert notifications against real servers on loopback.

- an aiosmtpd SMTP server (with AUTH, no TLS) receives the email;
- an aiohttp server stands in for Discord's webhook API and Telegram's Bot API (Apprise's
  plugins are pointed at it through their ``notify_url`` class attribute), answering
  with real response shapes: 204/200, 429 with ``retry_after``, 500s;
- the outbox lives on a SQLite file, and on PostgreSQL where marked.
"""

from __future__ import annotations

import asyncio
import email
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from email import policy
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import select
from structlog.testing import capture_logs

import corec.plugins.alert_manager as alert_manager_pkg
from corec.core.clock import NS_PER_S
from corec.core.errors import ConfigError
from corec.core.ids import new_id
from corec.core.store import Store
from corec.core.store.migrate import upgrade
from corec.plugins.alert_manager import models as m
from corec.plugins.alert_manager.config import DeliveryConfig, ReceiverConfig
from corec.plugins.alert_manager.delivery import AttemptOutcome, Dispatcher
from corec.plugins.alert_manager.outbox import (
    Outbox,
    notification_from_json,
    notification_to_json,
)
from corec.plugins.alert_manager.receivers import (
    Receiver,
    apprise_module,
    redact,
    resolve_receiver,
    resolve_receivers,
    split_urls,
)
from corec.plugins.alert_manager.render import render
from corec.plugins.alert_manager.types import AlertInstance, Notification

MIGRATIONS = Path(alert_manager_pkg.__file__).parent / "migrations"
T0 = 1_767_225_600 * NS_PER_S  # 2026-01-01T00:00:00Z
DISCORD_ID = "112233445566778899"
DISCORD_TOKEN = "dIsCoRdToKeN-5ecret-42abcXYZ"
TELEGRAM_TOKEN = "123456789:AAHtelegramSecretToken42xyz"
TELEGRAM_CHAT = "-1001234567"
SMTP_USER, SMTP_PASSWORD = "corec", "smtp-Pa55word-77"
SECRETS = (DISCORD_TOKEN, TELEGRAM_TOKEN, "AAHtelegramSecretToken42xyz", SMTP_PASSWORD)


# -- fixtures: stores, servers ---------------------------------------------------------


async def migrated(url: str) -> Store:
    store = Store(url, name="alert_manager")
    await upgrade(store, MIGRATIONS)
    return store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """alert_manager's store on a SQLite file, migrated."""
    store = await migrated(f"sqlite:///{tmp_path / 'alerts.db'}")
    try:
        yield store
    finally:
        await store.dispose()


@dataclass
class Hit:
    service: str
    at: float  # time.monotonic()
    path: str
    body: dict[str, Any]


Reply = tuple[int, dict[str, Any] | None, dict[str, str]]
Behaviour = Callable[[int, dict[str, Any]], Reply]
"""(1-based number of this service's request, request JSON) -> (status, JSON, headers)."""


def discord_ok(_n: int, _body: dict[str, Any]) -> Reply:
    return 204, None, {}


def telegram_ok(_n: int, body: dict[str, Any]) -> Reply:
    return 200, {"ok": True, "result": {"message_id": 1, "chat": {"id": body.get("chat_id")}}}, {}


def server_error(_n: int, _body: dict[str, Any]) -> Reply:
    return 500, {"message": "Internal Server Error"}, {}


@dataclass
class FakeServices:
    """Discord's webhook and Telegram's Bot API on one loopback aiohttp server."""

    discord: Behaviour = discord_ok
    telegram: Behaviour = telegram_ok
    hits: list[Hit] = field(default_factory=list)

    def of(self, service: str) -> list[Hit]:
        return [h for h in self.hits if h.service == service]

    async def handle(self, request: web.Request, service: str) -> web.Response:
        body = await request.json()
        self.hits.append(Hit(service, time.monotonic(), request.path, body))
        behaviour = self.discord if service == "discord" else self.telegram
        status, payload, headers = behaviour(len(self.of(service)), body)
        self.statuses.append(status)
        if payload is None:
            return web.Response(status=status, headers=headers)
        return web.json_response(payload, status=status, headers=headers)

    def __post_init__(self) -> None:
        self.statuses: list[int] = []

    def delivered(self, service: str) -> list[Hit]:
        """Requests of ``service`` answered with a 2xx."""
        return [
            h
            for h, status in zip(self.hits, self.statuses, strict=True)
            if h.service == service and status < 300
        ]


@pytest.fixture
async def services(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeServices]:
    """The fake Discord + Telegram server; Apprise's plugins point at it."""
    apprise_module()
    from apprise.plugins.discord import NotifyDiscord
    from apprise.plugins.telegram import NotifyTelegram

    fake = FakeServices()
    app = web.Application()
    app.router.add_post("/api/webhooks/{id}/{token}", lambda r: fake.handle(r, "discord"))
    app.router.add_post("/bot{token}/{method}", lambda r: fake.handle(r, "telegram"))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    monkeypatch.setattr(NotifyDiscord, "notify_url", f"http://127.0.0.1:{port}/api/webhooks")
    monkeypatch.setattr(NotifyTelegram, "notify_url", f"http://127.0.0.1:{port}/bot")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    try:
        yield fake
    finally:
        await runner.cleanup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mailbox:
    """What the SMTP server received."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        self.logins.append((data.login, data.password))
        ok = data.login == SMTP_USER.encode() and data.password == SMTP_PASSWORD.encode()
        return AuthResult(success=ok)


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server (aiosmtpd) on loopback: AUTH without TLS."""
    box = Mailbox()
    port = free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        authenticator=box.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


# -- helpers -----------------------------------------------------------------------------

DISCORD_URL = f"discord://{DISCORD_ID}/{DISCORD_TOKEN}"
TELEGRAM_URL = f"tgram://{TELEGRAM_TOKEN}/{TELEGRAM_CHAT}"


def mail_url(port: int) -> str:
    return (
        f"mailto://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{port}"
        "?to=ops@example.org&from=corec@example.org&mode=insecure"
    )


def fast(**overrides: Any) -> DeliveryConfig:
    values: dict[str, Any] = {
        "timeout_s": 5.0,
        "max_attempts": 4,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "breaker_failures": 10,
        "breaker_reset_s": 60.0,
        "poll_interval_s": 0.05,
    }
    return DeliveryConfig(**{**values, **overrides})


def alert(
    name: str = "breaker_open",
    severity: str = "critical",
    *,
    alert_id: str | None = None,
    message: str | None = None,
    state: str = "firing",
    **labels: str,
) -> AlertInstance:
    labels = labels or {"exchange": "binance"}
    return AlertInstance(
        alert_id=alert_id or new_id(),
        fingerprint="f" * 16,
        name=name,
        severity=severity,  # type: ignore[arg-type]
        message=message or f"{name} on {labels.get('exchange', 'x')}",
        labels=labels,
        source="exchange_sync@node1",
        state=state,  # type: ignore[arg-type]
        starts_ts_ns=T0,
        updated_ts_ns=T0 + 5 * NS_PER_S,
        ends_ts_ns=T0 + 60 * NS_PER_S if state == "resolved" else None,
    )


def note(
    receiver: str,
    *alerts: AlertInstance,
    severity: str | None = None,
    resolved: tuple[AlertInstance, ...] = (),
    group: dict[str, str] | None = None,
) -> Notification:
    firing = alerts or ((alert(),) if not resolved else ())
    first = (firing or resolved)[0]
    return Notification(
        notification_id=new_id(),
        receiver=receiver,
        group_key=f"{{}}:{{alertname={first.name}}}",
        group_labels=group if group is not None else {"alertname": first.name, **first.labels},
        severity=severity or first.severity,  # type: ignore[arg-type]
        firing=tuple(firing),
        resolved=resolved,
        created_ts_ns=T0 + 10 * NS_PER_S,
    )


def receiver(name: str, *urls: str) -> Receiver:
    return Receiver.of(name, urls)


async def wait_status(
    outbox: Outbox, notification_id: str, *statuses: str, timeout_s: float = 10.0
) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        entry = await outbox.get(notification_id)
        if entry is not None and entry.status in statuses:
            return entry.status
        if time.monotonic() > deadline:
            state = None if entry is None else (entry.status, entry.attempts, entry.last_error)
            raise AssertionError(f"{notification_id} never became {statuses}: {state}")
        await asyncio.sleep(0.02)


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def all_rows(store: Store) -> str:
    """Every notifications and delivery_attempts row as text (for secret checks)."""

    def work(conn: Any) -> str:
        rows = [*conn.execute(select(m.notifications)).all()]
        rows += [*conn.execute(select(m.delivery_attempts)).all()]
        return "\n".join(repr(tuple(r)) for r in rows)

    return await store.read(work)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.fixture
def attempts() -> list[AttemptOutcome]:
    return []


def dispatcher(
    store: Store,
    receivers: list[Receiver],
    config: DeliveryConfig,
    tmp_path: Path,
    attempts: list[AttemptOutcome] | None = None,
    **kwargs: Any,
) -> Dispatcher:
    return Dispatcher(
        store,
        {r.name: r for r in receivers},
        config,
        fallback_file=tmp_path / "var" / "alerts-undelivered.log",
        on_attempt=None if attempts is None else attempts.append,
        **kwargs,
    )


# -- receivers ---------------------------------------------------------------------------


def test_receivers_come_from_the_environment_and_a_secret_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "urls.secret"
    secret_file.write_text(
        f"# the ops mailbox\n\n{mail_url(2525)}\n  # telegram\n{TELEGRAM_URL}\n", encoding="utf-8"
    )
    env = {"COREC_ALERTS_URLS": f"  {DISCORD_URL},json://hooks.example.org/alerts \n"}
    config = ReceiverConfig(name="ops", urls_env="COREC_ALERTS_URLS", urls_file=secret_file)

    got = resolve_receiver(config, env)

    assert got.urls == (
        DISCORD_URL,
        "json://hooks.example.org/alerts",
        mail_url(2525),
        TELEGRAM_URL,
    )
    assert got.redacted == (
        "discord://***",
        "json://hooks.example.org",
        "mailto://127.0.0.1",
        "tgram://***",
    )
    assert got.sources == ("environment variable COREC_ALERTS_URLS", f"file {secret_file}")
    assert_no_secret(repr(got))
    assert_no_secret(
        got.scrub(f"boom at {DISCORD_URL} with {SMTP_PASSWORD} and bot{TELEGRAM_TOKEN}/x")
    )
    # a comma inside a URL stays; one before the next scheme:// separates
    assert split_urls("mailto://u:p@h?to=a@x.org,b@y.org, json://h.example.org") == [
        "mailto://u:p@h?to=a@x.org,b@y.org",
        "json://h.example.org",
    ]


def test_receiver_problems_name_the_receiver_the_source_and_what_is_wrong(tmp_path: Path) -> None:
    empty_file = tmp_path / "empty.secret"
    empty_file.write_text("# nothing yet\n\n", encoding="utf-8")
    configs = [
        ReceiverConfig(name="unset", urls_env="COREC_UNSET"),
        ReceiverConfig(name="blank", urls_env="COREC_BLANK"),
        ReceiverConfig(name="missing", urls_file=tmp_path / "nope.secret"),
        ReceiverConfig(name="empty", urls_file=empty_file),
        ReceiverConfig(name="bad", urls_env="COREC_BAD"),
    ]
    env = {"COREC_BLANK": "  ", "COREC_BAD": f"{DISCORD_URL} nosuchservice://{DISCORD_TOKEN}"}

    with pytest.raises(ConfigError) as raised:
        resolve_receivers(configs, env)

    problems = raised.value.problems
    assert problems == [
        "receivers[unset].urls_env: environment variable COREC_UNSET is not set "
        "(it should hold the Apprise URLs)",
        "receivers[blank].urls_env: environment variable COREC_BLANK is empty "
        "(it should hold the Apprise URLs)",
        f"receivers[missing].urls_file: file {tmp_path / 'nope.secret'} does not exist",
        f"receivers[empty].urls_file: file {empty_file} has no URL (only blank or # lines)",
        "receivers[bad]: URL #2 (nosuchservice://***) from environment variable COREC_BAD: "
        "Apprise cannot use it: Unparseable URL nosuchservice://***",
    ]
    assert_no_secret(str(raised.value))


def test_redact_shows_scheme_and_host_only() -> None:
    assert redact(f"mailtos://{SMTP_USER}:{SMTP_PASSWORD}@smtp.example.org:465?to=a@b.org") == (
        "mailtos://smtp.example.org"
    )
    assert redact(TELEGRAM_URL) == "tgram://***"  # the "host" is the bot token
    assert redact(DISCORD_URL) == "discord://***"
    assert redact("json://10.0.0.7:8080/hook?token=abc") == "json://10.0.0.7"
    assert redact("not a url") == "***"


# -- rendering ---------------------------------------------------------------------------


def test_render_puts_severity_first_and_escapes_html() -> None:
    a = alert(message="Binance <breaker> opened & stays open", exchange="binance", market="spot")
    b = alert(exchange="binance", market="futures")
    rendered = render(note("ops", a, b, group={"alertname": "breaker_open", "exchange": "binance"}))

    assert rendered.title == "[CRITICAL] breaker_open: binance (2 alerts)"
    assert rendered.text.splitlines() == [
        "Group: exchange=binance",
        "Firing (2):",
        "- [CRITICAL] breaker_open: Binance <breaker> opened & stays open "
        "(exchange=binance, market=spot) since 2026-01-01 00:00:00 UTC",
        "- [CRITICAL] breaker_open: breaker_open on binance (exchange=binance, market=futures) "
        "since 2026-01-01 00:00:00 UTC",
    ]
    assert (
        "- **CRITICAL** breaker\\_open: Binance \\<breaker> opened & stays open"
        in rendered.markdown
    )
    assert "`exchange=binance` `market=spot` _since 2026-01-01 00:00:00 UTC_" in rendered.markdown
    assert "Binance &lt;breaker&gt; opened &amp; stays open" in rendered.html
    assert "<breaker>" not in rendered.html
    assert rendered.html.startswith("<p><b>[CRITICAL] breaker_open: binance (2 alerts)</b></p>")

    gone = alert(state="resolved")
    resolved = render(note("ops", resolved=(gone,), severity="critical"))
    assert resolved.title == "[RESOLVED] breaker_open: binance (1 alert)"
    assert "resolved 2026-01-01 00:01:00 UTC" in resolved.text

    test_note = Notification(new_id(), "ops", "test", {}, "low", (), (), T0, test=True)
    assert render(test_note).title == "[TEST] CoreC test notification"
    assert "receiver 'ops'" in render(test_note).text


def test_render_never_shows_secrets() -> None:
    leaky = alert(
        message=f"webhook failed: https://bot:{SMTP_PASSWORD}@api.example.org/x",
        exchange="binance",
        api_token="tok-very-secret-1",
    )
    rendered = render(note("ops", leaky))
    for body in (rendered.title, rendered.text, rendered.markdown, rendered.html):
        assert SMTP_PASSWORD not in body
        assert "tok-very-secret-1" not in body
    assert "https://***@api.example.org/x" in rendered.text
    assert "api_token=***" in rendered.text


# -- the outbox --------------------------------------------------------------------------


async def test_outbox_stores_notifications_idempotently(db_url: str) -> None:
    store = await migrated(db_url)
    try:
        outbox = Outbox(store)
        notification = note("ops", alert(), alert(name="stale_data", severity="high"))
        assert notification_from_json(notification_to_json(notification)) == notification

        assert await outbox.enqueue(notification, now_ns=T0) is True
        assert await outbox.enqueue(notification, now_ns=T0 + 1) is False

        [due] = await outbox.due("ops", T0)
        assert due.notification == notification
        assert (due.status, due.attempts, due.next_attempt_ts_ns) == ("pending", 0, T0)
        assert await outbox.due("ops", T0 - 1) == []
        assert await outbox.pending_counts() == {"ops": 1}
        [listed] = await outbox.list_entries(status="pending")
        assert listed["notification_id"] == notification.notification_id
        assert "payload_json" not in listed

        # the fallback's question: which other entries carry this alert?
        shared = notification.firing[0]
        elsewhere = note("mail", shared)
        unrelated = note("mail", alert(alert_id="01a1fdd0-eb76-7186-ba50-000000000000"))
        for other in (elsewhere, unrelated, note("log", shared)):
            await outbox.enqueue(other, now_ns=T0)
        found = await outbox.containing([shared.alert_id], exclude_id=notification.notification_id)
        assert [e.notification_id for e in found] == [elsewhere.notification_id]
    finally:
        await store.dispose()


# -- email -------------------------------------------------------------------------------


async def test_email_reaches_a_real_smtp_server(
    store: Store, smtp: tuple[Mailbox, int], tmp_path: Path, attempts: list[AttemptOutcome]
) -> None:
    box, port = smtp
    mail = receiver("mail", mail_url(port))
    notification = note("mail", alert(message="Binance <down> & out"))
    d = dispatcher(store, [mail], fast(), tmp_path, attempts)
    await d.start()
    try:
        await d.enqueue(notification)
        assert await wait_status(d.outbox, notification.notification_id, "sent") == "sent"
    finally:
        await d.stop()

    [envelope] = box.envelopes
    assert envelope.mail_from == "corec@example.org"
    assert envelope.rcpt_tos == ["ops@example.org"]
    assert box.logins == [(SMTP_USER.encode(), SMTP_PASSWORD.encode())]
    message = email.message_from_bytes(envelope.content, policy=policy.default)
    assert message["Subject"] == "[CRITICAL] breaker_open: binance (1 alert)"
    assert message["To"].endswith("ops@example.org")
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "CRITICAL" in plain and "Binance <down> & out" in plain
    assert "Binance &lt;down&gt; &amp; out" in html
    assert_no_secret(envelope.content.decode())

    assert [(a.receiver, a.attempt, a.outcome) for a in attempts] == [("mail", 1, "sent")]
    assert attempts[0].alert_ids == tuple(a.alert_id for a in notification.firing)
    assert attempts[0].duration_ms > 0
    assert_no_secret(await all_rows(store))


# -- Discord and Telegram --------------------------------------------------------------


async def test_discord_and_telegram_receive_markdown_with_severity_first(
    store: Store, services: FakeServices, tmp_path: Path, attempts: list[AttemptOutcome]
) -> None:
    chat = receiver("chat", DISCORD_URL, TELEGRAM_URL)
    notification = note("chat", alert(exchange="binance", market="spot_market"))
    d = dispatcher(store, [chat], fast(), tmp_path, attempts)
    await d.start()
    try:
        await d.enqueue(notification)
        await wait_status(d.outbox, notification.notification_id, "sent")
    finally:
        await d.stop()

    [discord] = services.of("discord")
    assert discord.path == f"/api/webhooks/{DISCORD_ID}/{DISCORD_TOKEN}"
    content = discord.body["content"]
    assert content.startswith("[CRITICAL] breaker_open: binance, spot_market (1 alert)\r\n")
    assert "- **CRITICAL** breaker\\_open: breaker\\_open on binance" in content
    assert "`exchange=binance` `market=spot_market`" in content

    [telegram] = services.of("telegram")
    assert telegram.path == f"/bot{TELEGRAM_TOKEN}/sendMessage"
    assert str(telegram.body["chat_id"]) == TELEGRAM_CHAT
    assert telegram.body["parse_mode"].lower() == "markdown"
    assert telegram.body["text"].startswith(
        "*[CRITICAL] breaker_open: binance, spot_market (1 alert)*"
    )

    assert [(a.outcome, a.attempt) for a in attempts] == [("sent", 1)]
    stored = await all_rows(store)
    assert_no_secret(stored)


@pytest.mark.parametrize("service", ["discord", "telegram"])
async def test_429_waits_for_retry_after_then_delivers(
    store: Store,
    services: FakeServices,
    tmp_path: Path,
    attempts: list[AttemptOutcome],
    service: str,
) -> None:
    window: dict[str, float] = {}

    def limited(n: int, body: dict[str, Any]) -> Reply:
        now = time.monotonic()
        window.setdefault("until", now + 1.0)
        if now < window["until"]:
            if service == "discord":
                reset = f"{time.time() + 1.0:.3f}"  # Discord sends a float epoch
                return (
                    429,
                    {"message": "You are being rate limited.", "retry_after": 1.0, "global": False},
                    {"Retry-After": "1", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
                )
            return (
                429,
                {
                    "ok": False,
                    "error_code": 429,
                    "description": "Too Many Requests: retry after 1",
                    "parameters": {"retry_after": 1},
                },
                {},
            )
        return discord_ok(n, body) if service == "discord" else telegram_ok(n, body)

    setattr(services, service, limited)
    target = receiver("chat", DISCORD_URL if service == "discord" else TELEGRAM_URL)
    notification = note("chat")
    d = dispatcher(store, [target], fast(), tmp_path, attempts)
    await d.start()
    try:
        await d.enqueue(notification)
        await wait_status(d.outbox, notification.notification_id, "sent")
    finally:
        await d.stop()

    first = services.of(service)[0]
    [delivered] = services.delivered(service)
    assert delivered.at - first.at >= 1.0  # waited retry_after, not the 0.05 s backoff
    assert [(a.outcome, a.retry_after_s) for a in attempts] == [
        ("rate_limited", Decimal("1.000")),
        ("sent", None),
    ]
    assert "error=429" in (attempts[0].error or "")
    assert_no_secret(await all_rows(store))


async def test_500s_are_retried_with_backoff_then_sent(
    store: Store, services: FakeServices, tmp_path: Path, attempts: list[AttemptOutcome]
) -> None:
    services.telegram = lambda n, body: server_error(n, body) if n <= 2 else telegram_ok(n, body)
    target = receiver("tg", TELEGRAM_URL)
    notification = note("tg", alert(severity="high"))
    d = dispatcher(
        store, [target], fast(backoff_initial_s=0.2, backoff_max_s=1.0), tmp_path, attempts
    )
    await d.start()
    try:
        await d.enqueue(notification)
        await wait_status(d.outbox, notification.notification_id, "sent")
    finally:
        await d.stop()

    hits = services.of("telegram")
    assert len(hits) == 3
    # backoff 0.2 s then 0.4 s, each jittered down to at most half
    assert hits[1].at - hits[0].at >= 0.1
    assert hits[2].at - hits[1].at >= 0.2
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "failed"), (2, "failed"), (3, "sent")]
    assert "error=500" in (attempts[0].error or "")
    rows = await d.outbox.attempts(notification.notification_id)
    assert [(r["attempt"], r["outcome"]) for r in rows] == [
        (1, "failed"),
        (2, "failed"),
        (3, "sent"),
    ]
    entry = await d.outbox.get(notification.notification_id)
    assert entry is not None and (entry.status, entry.attempts) == ("sent", 3)


async def test_a_receiver_that_always_fails_gives_up_and_opens_its_breaker_only(
    store: Store, services: FakeServices, tmp_path: Path, attempts: list[AttemptOutcome]
) -> None:
    services.discord = server_error
    changes: list[tuple[str, str, str]] = []
    d = dispatcher(
        store,
        [receiver("discord", DISCORD_URL), receiver("telegram", TELEGRAM_URL)],
        fast(max_attempts=3, breaker_failures=3),
        tmp_path,
        attempts,
        on_breaker_change=lambda name, old, new, _reason: changes.append((name, old, new)),
    )
    doomed = note("discord", alert(severity="high"))
    fine = note("telegram", alert(severity="high"))
    await d.start()
    try:
        await d.enqueue(doomed)
        await d.enqueue(fine)
        assert await wait_status(d.outbox, fine.notification_id, "sent") == "sent"
        assert await wait_status(d.outbox, doomed.notification_id, "failed") == "failed"
        assert d.breaker_states() == {"discord": "open", "telegram": "closed"}
        # while open, the receiver is not even tried
        later = note("discord", alert(severity="high"))
        await d.enqueue(later)
        await wait_until(
            lambda: any(a.notification_id == later.notification_id for a in attempts),
            "a breaker_open attempt",
        )
    finally:
        await d.stop()

    assert changes == [("alert_manager.discord", "closed", "open")]
    assert len(services.of("discord")) == 3
    assert len(services.of("telegram")) == 1
    by_id: dict[str, list[str]] = {}
    for a in attempts:
        by_id.setdefault(a.notification_id, []).append(a.outcome)
    assert by_id[doomed.notification_id] == ["failed", "failed", "gave_up"]
    assert by_id[fine.notification_id] == ["sent"]
    assert by_id[later.notification_id] == ["breaker_open"]
    entry = await d.outbox.get(later.notification_id)
    assert entry is not None and (entry.status, entry.attempts) == ("pending", 0)
    assert not (tmp_path / "var" / "alerts-undelivered.log").exists()  # not critical


# -- restart -----------------------------------------------------------------------------


async def test_pending_notifications_are_delivered_once_after_a_restart(
    db_url: str, services: FakeServices, tmp_path: Path
) -> None:
    services.discord = lambda n, body: (503, {"message": "unavailable"}, {})
    target = receiver("discord", DISCORD_URL)
    pending = [note("discord", alert(name=f"restart_{i}", severity="high")) for i in range(3)]

    store = await migrated(db_url)
    first_run: list[AttemptOutcome] = []
    d = dispatcher(
        store, [target], fast(backoff_initial_s=0.5, backoff_max_s=0.5), tmp_path, first_run
    )
    await d.start()
    for notification in pending:
        await d.enqueue(notification)
    await wait_until(lambda: len(first_run) == 3, "one failed attempt each")
    await d.stop()
    await store.dispose()
    assert [a.outcome for a in first_run] == ["failed"] * 3

    # a new process: new store, new dispatcher; the service is back
    services.discord = discord_ok
    store = await migrated(db_url)
    second_run: list[AttemptOutcome] = []
    d = dispatcher(store, [target], fast(), tmp_path, second_run)
    try:
        await d.start()
        for notification in pending:
            await wait_status(d.outbox, notification.notification_id, "sent")
        await asyncio.sleep(0.3)  # time for any duplicate to show up
        await d.stop()

        delivered = [h.body["content"].split(":")[0] for h in services.delivered("discord")]
        assert sorted(delivered) == ["[HIGH] restart_0", "[HIGH] restart_1", "[HIGH] restart_2"]
        assert sorted((a.notification_id, a.attempt, a.outcome) for a in second_run) == sorted(
            (n.notification_id, 2, "sent") for n in pending
        )
        for notification in pending:
            rows = await d.outbox.attempts(notification.notification_id)
            assert [(r["attempt"], r["outcome"]) for r in rows] == [(1, "failed"), (2, "sent")]
        assert await d.pending_counts() == {}
    finally:
        await d.stop()
        await store.dispose()


async def test_pending_entries_wait_for_start(
    store: Store, services: FakeServices, tmp_path: Path
) -> None:
    """Enqueued before start (e.g. during the plugin's start-up): nothing is sent until
    start, then each exactly once."""
    d = dispatcher(store, [receiver("discord", DISCORD_URL)], fast(), tmp_path)
    early = [note("discord", alert(name=f"early_{i}")) for i in range(2)]
    for notification in early:
        await d.enqueue(notification)
    await asyncio.sleep(0.2)
    assert services.hits == []
    await d.start()
    try:
        for notification in early:
            await wait_status(d.outbox, notification.notification_id, "sent")
        await asyncio.sleep(0.2)
    finally:
        await d.stop()
    assert len(services.of("discord")) == 2


# -- the critical fallback -------------------------------------------------------------


async def test_critical_alert_with_every_receiver_down_lands_in_the_fallback_file(
    store: Store,
    services: FakeServices,
    tmp_path: Path,
    attempts: list[AttemptOutcome],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from apprise.plugins.email.base import NotifyEmail

    # Apprise spaces two sends of one email service by 5.5 s; not needed against loopback
    monkeypatch.setattr(NotifyEmail, "request_rate_per_sec", 0)
    services.discord = server_error
    dead_smtp = mail_url(free_port())  # nothing listens there
    critical = alert(name="nav_drop", message="NAV fell 12% in 5 min", pool="main")
    to_discord = note("discord", critical)
    to_mail = note("mail", critical)
    to_log = note("log", critical)
    d = dispatcher(
        store,
        [receiver("discord", DISCORD_URL), receiver("mail", dead_smtp)],
        fast(max_attempts=2),
        tmp_path,
        attempts,
    )
    fallback = tmp_path / "var" / "alerts-undelivered.log"
    await d.start()
    try:
        with capture_logs() as logs:
            await d.enqueue(to_log)
            await d.enqueue(to_discord)
            await d.enqueue(to_mail)
            await wait_until(lambda: any(a.outcome == "fallback" for a in attempts), "the fallback")
            statuses = sorted(
                [
                    await wait_status(d.outbox, to_discord.notification_id, "failed", "fallback"),
                    await wait_status(d.outbox, to_mail.notification_id, "failed", "fallback"),
                ]
            )
    finally:
        await d.stop()

    assert statuses == ["failed", "fallback"]
    [line] = fallback.read_text(encoding="utf-8").splitlines()
    record = json.loads(line)
    assert record["severity"] == "critical"
    assert record["title"] == "[CRITICAL] nav_drop: main (1 alert)"
    assert record["failed_receivers"] == ["discord", "mail"]
    assert [(a["alert_id"], a["name"], a["message"]) for a in record["alerts"]] == [
        (critical.alert_id, "nav_drop", "NAV fell 12% in 5 min")
    ]
    criticals = [e for e in logs if e["log_level"] == "critical"]
    assert [e["event"] for e in criticals] == [
        "[CRITICAL] nav_drop: main (1 alert)",  # the log receiver
        "undelivered critical alert: [CRITICAL] nav_drop: main (1 alert)",
    ]
    assert criticals[1]["fallback_file"] == str(fallback)
    outcomes = [(a.receiver, a.outcome) for a in attempts]
    assert outcomes[0] == ("log", "sent")
    assert outcomes.count(("discord", "gave_up")) == 1 and outcomes.count(("mail", "gave_up")) == 1
    assert len([o for o in outcomes if o[1] == "fallback"]) == 1
    assert_no_secret(line)
    assert_no_secret(await all_rows(store))


async def test_critical_alert_delivered_elsewhere_is_not_a_fallback(
    store: Store, services: FakeServices, tmp_path: Path, attempts: list[AttemptOutcome]
) -> None:
    services.discord = server_error
    critical = alert(name="nav_drop", pool="main")
    d = dispatcher(
        store,
        [receiver("discord", DISCORD_URL), receiver("telegram", TELEGRAM_URL)],
        fast(max_attempts=2),
        tmp_path,
        attempts,
    )
    to_discord, to_telegram = note("discord", critical), note("telegram", critical)
    await d.start()
    try:
        await d.enqueue(to_telegram)
        await d.enqueue(to_discord)
        await wait_status(d.outbox, to_telegram.notification_id, "sent")
        assert (
            await wait_status(d.outbox, to_discord.notification_id, "failed", "fallback")
            == "failed"
        )
    finally:
        await d.stop()
    assert not (tmp_path / "var" / "alerts-undelivered.log").exists()


async def test_secrets_in_a_service_error_are_scrubbed(
    store: Store, services: FakeServices, tmp_path: Path, attempts: list[AttemptOutcome]
) -> None:
    services.telegram = lambda n, body: (
        401,
        {
            "ok": False,
            "error_code": 401,
            "description": f"Unauthorized: bot{TELEGRAM_TOKEN} revoked",
        },
        {},
    )
    notification = note("tg", alert(severity="medium"))
    d = dispatcher(store, [receiver("tg", TELEGRAM_URL)], fast(max_attempts=1), tmp_path, attempts)
    await d.start()
    try:
        await d.enqueue(notification)
        await wait_status(d.outbox, notification.notification_id, "failed")
    finally:
        await d.stop()
    [attempt] = attempts
    assert attempt.outcome == "gave_up"
    assert attempt.error is not None and "error=401" in attempt.error
    assert attempt.error.startswith("tgram://***: ")
    assert "Unauthorized: bot*** revoked" in attempt.error
    assert_no_secret(await all_rows(store))


# -- the log receiver and unknown receivers ------------------------------------------


async def test_log_receiver_logs_at_the_severity_and_counts_as_sent(
    store: Store, tmp_path: Path, attempts: list[AttemptOutcome]
) -> None:
    d = dispatcher(store, [], fast(), tmp_path, attempts)
    high, low = note("log", alert(severity="high")), note("log", alert(severity="low"))
    with capture_logs() as logs:
        await d.enqueue(high)
        await d.enqueue(low)
        await d.enqueue(high)  # the same id again: nothing new
    notified = [e for e in logs if e.get("receiver") == "log"]
    assert [(e["log_level"], e["event"]) for e in notified] == [
        ("error", "[HIGH] breaker_open: binance (1 alert)"),
        ("info", "[LOW] breaker_open: binance (1 alert)"),
    ]
    assert "Firing (1):" in notified[0]["body"]
    assert [(a.receiver, a.outcome) for a in attempts] == [("log", "sent"), ("log", "sent")]
    for n in (high, low):
        entry = await d.outbox.get(n.notification_id)
        assert entry is not None and (entry.status, entry.attempts) == ("sent", 1)


async def test_unknown_receiver_fails_that_notification_only(
    store: Store, tmp_path: Path, attempts: list[AttemptOutcome]
) -> None:
    d = dispatcher(store, [], fast(), tmp_path, attempts)
    notification = note("ghost", alert(severity="medium"))
    await d.enqueue(notification)
    entry = await d.outbox.get(notification.notification_id)
    assert entry is not None and entry.status == "failed"
    assert [(a.outcome, a.error) for a in attempts] == [
        ("gave_up", "receiver 'ghost' is not configured")
    ]


async def test_an_open_breaker_lets_one_probe_through_after_its_reset_time(
    store: Store, services: FakeServices, tmp_path: Path, attempts: list[AttemptOutcome]
) -> None:
    """On an injected clock: the breaker opens on the first failure, refuses while open,
    and after ``breaker_reset_s`` (clock moved 61 s) the probe delivers and closes it."""
    services.discord = lambda n, body: server_error(n, body) if n == 1 else discord_ok(n, body)
    offset = {"ns": 0}
    changes: list[tuple[str, str]] = []
    d = dispatcher(
        store,
        [receiver("discord", DISCORD_URL)],
        fast(breaker_failures=1, breaker_reset_s=60.0, max_attempts=5),
        tmp_path,
        attempts,
        now_ns=lambda: time.time_ns() + offset["ns"],
        on_breaker_change=lambda _name, old, new, _reason: changes.append((old, new)),
    )
    notification = note("discord", alert(severity="medium"))
    await d.start()
    try:
        await d.enqueue(notification)
        await wait_until(
            lambda: [a.outcome for a in attempts][:2] == ["failed", "breaker_open"], "a refusal"
        )
        await asyncio.sleep(0.3)
        assert len(services.of("discord")) == 1  # nothing sent while open
        offset["ns"] = 61 * NS_PER_S
        await wait_status(d.outbox, notification.notification_id, "sent")
    finally:
        await d.stop()
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    outcomes = [a.outcome for a in attempts]
    assert outcomes[0] == "failed" and outcomes[-1] == "sent"
    assert set(outcomes[1:-1]) == {"breaker_open"}
    assert [a.attempt for a in attempts if a.outcome != "breaker_open"] == [1, 2]
