"""alert_manager's query endpoints through a real node and bus (``alert_manager`` alone,
a replay clock moved by hand), on SQLite and on PostgreSQL: listing with filters and
paging, and acks and silences that take effect in the running engine at once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from corec.core import channels
from corec.core.clock import NS_PER_S, ReplayClock
from corec.core.config import CorecConfig
from corec.core.events import make_event
from corec.core.notices import Alert, Severity
from corec.core.nucleus import Node
from corec.core.queries import Refused
from corec.messages.alert_data import (
    ACK,
    ALERTS,
    SILENCE,
    SILENCES,
    UNSILENCE,
    AckRequest,
    AlertAcknowledged,
    AlertRecorded,
    AlertRow,
    AlertsPage,
    AlertsRequest,
    SilenceChanged,
    SilenceRequest,
    SilencesPage,
    SilencesRequest,
    UnsilenceRequest,
)
from corec.plugins.alert_manager.plugin import AlertManagerPlugin
from tests.harness import Recorder, started_node

D = Decimal
S = NS_PER_S
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
MakeConfig = Callable[..., CorecConfig]


@dataclass
class Manager:
    node: Node
    rec: Recorder

    @property
    def plugin(self) -> AlertManagerPlugin:
        plugin = self.node.plugin("alert_manager")
        assert isinstance(plugin, AlertManagerPlugin)
        return plugin

    def advance(self, ts_ns: int) -> None:
        assert isinstance(self.node.clock, ReplayClock)
        self.node.clock.advance_to(ts_ns)

    async def ask(self, endpoint: str, payload: Any) -> Any:
        return await self.node.bus.request(endpoint, payload, timeout_s=10)

    async def raise_alert(
        self,
        at_ns: int,
        name: str,
        severity: Severity = "medium",
        *,
        state: str = "firing",
        resolvable: bool = False,
        **labels: str,
    ) -> AlertRecorded | None:
        """Publish an alert on ``alerts`` at ``at_ns``; what alert_data said of it."""
        self.advance(at_ns)
        before = len(self.recorded())
        alert = Alert(
            name=name,
            message=f"{name} {state}",
            severity=severity,
            labels=labels,
            state=state,  # type: ignore[arg-type]
            resolvable=resolvable,
        )
        await self.node.bus.publish(
            make_event(channels.ALERTS, alert, source="test@x", clock=self.node.clock)
        )
        seen = self.recorded()
        return seen[-1] if len(seen) > before else None

    def recorded(self) -> list[AlertRecorded]:
        return self.rec.payloads(AlertRecorded, channel=channels.ALERT_DATA)


@pytest.fixture
async def manager(make_config: MakeConfig, db_url: str) -> AsyncIterator[Manager]:
    config = make_config(
        {
            "node": {"plugins": ["alert_manager"], "clock": "replay"},
            "alert_manager": {"database_url": db_url},
        }
    )
    async with started_node(config, channels.ALERT_DATA) as (node, rec):
        yield Manager(node, rec)


@dataclass
class History:
    price: AlertRecorded
    breaker: AlertRecorded
    other: AlertRecorded


async def history(m: Manager) -> History:
    """price_move fires at T0 and repeats at T0+40s; breaker_open fires at T0+10s and
    resolves at T0+30s; breakerXopen (not a ``breaker_`` name) fires at T0+20s."""
    price = await m.raise_alert(T0, "price_move", symbol="BTC/USDT")
    breaker = await m.raise_alert(
        T0 + 10 * S, "breaker_open", "high", resolvable=True, exchange="kraken"
    )
    other = await m.raise_alert(T0 + 20 * S, "breakerXopen", "low", exchange="okx")
    resolved = await m.raise_alert(
        T0 + 30 * S, "breaker_open", "high", state="resolved", exchange="kraken"
    )
    again = await m.raise_alert(T0 + 40 * S, "price_move", symbol="BTC/USDT")
    assert price and breaker and other and resolved and again
    assert (resolved.alert_id, resolved.state) == (breaker.alert_id, "resolved")
    assert (again.alert_id, again.occurrences) == (price.alert_id, 2)
    return History(price, breaker, other)


def price_row(h: History, **changes: Any) -> AlertRow:
    row = AlertRow(
        alert_id=h.price.alert_id,
        fingerprint=h.price.fingerprint,
        name="price_move",
        severity="medium",
        state="firing",
        source="test@x",
        message="price_move firing",
        labels={"symbol": "BTC/USDT"},
        occurrences=2,
        starts_ts_ns=T0,
        last_ts_ns=T0 + 40 * S,
        ends_ts_ns=None,
        acked_by=None,
        acked_ts_ns=None,
        muted_by=None,
    )
    return AlertRow(**{**{f: getattr(row, f) for f in row.__struct_fields__}, **changes})


# -- alert_manager.alerts -------------------------------------------------------------------


async def test_alerts_newest_first_with_every_field(manager: Manager) -> None:
    h = await history(manager)
    page = await manager.ask(ALERTS, AlertsRequest())
    assert isinstance(page, AlertsPage)
    assert page.total == 3
    assert [a.alert_id for a in page.items] == [
        h.other.alert_id,
        h.breaker.alert_id,
        h.price.alert_id,
    ]
    assert page.items[2] == price_row(h)  # every receipt so far, though written behind
    breaker = page.items[1]
    assert (breaker.name, breaker.severity, breaker.state) == ("breaker_open", "high", "resolved")
    assert (breaker.starts_ts_ns, breaker.last_ts_ns, breaker.ends_ts_ns) == (
        T0 + 10 * S,
        T0 + 30 * S,
        T0 + 30 * S,
    )
    assert breaker.labels == {"exchange": "kraken"}
    assert breaker.occurrences == 1  # its resolution is not a receipt


async def test_alerts_filters_and_paging(manager: Manager) -> None:
    h = await history(manager)
    cases: list[tuple[AlertsRequest, list[str], int]] = [
        (AlertsRequest(severity="high"), [h.breaker.alert_id], 1),
        (AlertsRequest(state="resolved"), [h.breaker.alert_id], 1),
        (AlertsRequest(state="firing"), [h.other.alert_id, h.price.alert_id], 2),
        (AlertsRequest(state="expired"), [], 0),
        # the breakers' history: '_' is a literal, not LIKE's any-character
        (AlertsRequest(name_prefix="breaker_"), [h.breaker.alert_id], 1),
        (AlertsRequest(name_prefix="breaker"), [h.other.alert_id, h.breaker.alert_id], 2),
        (AlertsRequest(acked=True), [], 0),
        (AlertsRequest(acked=False, severity="medium"), [h.price.alert_id], 1),
        (AlertsRequest(limit=1, offset=1), [h.breaker.alert_id], 3),
        (AlertsRequest(limit=2, offset=2), [h.price.alert_id], 3),
        (AlertsRequest(offset=3), [], 3),
    ]
    for request_, ids, total in cases:
        page = await manager.ask(ALERTS, request_)
        assert ([a.alert_id for a in page.items], page.total) == (ids, total), request_


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (AlertsRequest(severity="urgent"), "severity"),  # type: ignore[arg-type]
        (AlertsRequest(state="open"), "state"),  # type: ignore[arg-type]
        (AlertsRequest(limit=0), "limit"),
        (AlertsRequest(offset=-2), "offset"),
    ],
)
async def test_alerts_refusals(manager: Manager, request_: AlertsRequest, field: str) -> None:
    refused = await manager.ask(ALERTS, request_)
    assert isinstance(refused, Refused)
    assert (refused.code, refused.field) == ("invalid", field)


# -- alert_manager.ack ----------------------------------------------------------------------


async def test_ack_takes_effect_at_once_and_keeps_the_first(manager: Manager) -> None:
    h = await history(manager)
    manager.advance(T0 + 50 * S)
    acked = await manager.ask(ACK, AckRequest(alert_id=h.price.alert_id, by="ops"))
    assert acked == AlertAcknowledged(alert_id=h.price.alert_id, by="ops", ts_ns=T0 + 50 * S)
    assert manager.plugin.engine.acks() == {h.price.alert_id: (T0 + 50 * S, "ops")}
    assert acked in manager.rec.payloads(AlertAcknowledged, channel=channels.ALERT_DATA)

    manager.advance(T0 + 60 * S)
    again = await manager.ask(ACK, AckRequest(alert_id=h.price.alert_id, by="someone"))
    assert again == acked  # the first acknowledgement stands
    page = await manager.ask(ALERTS, AlertsRequest(acked=True))
    assert page == AlertsPage(
        total=1, items=(price_row(h, acked_by="ops", acked_ts_ns=T0 + 50 * S),)
    )
    unacked = await manager.ask(ALERTS, AlertsRequest(acked=False))
    assert [a.alert_id for a in unacked.items] == [h.other.alert_id, h.breaker.alert_id]


async def test_ack_refusals(manager: Manager) -> None:
    await history(manager)
    missing = await manager.ask(ACK, AckRequest(alert_id="no-such-alert", by="ops"))
    assert isinstance(missing, Refused)
    assert (missing.code, missing.field) == ("not_found", "alert_id")
    nobody = await manager.ask(ACK, AckRequest(alert_id="x", by=" "))
    assert (nobody.code, nobody.field) == ("invalid", "by")
    assert (await manager.ask(ALERTS, AlertsRequest(acked=True))).total == 0


# -- alert_manager.silence / silences / unsilence ------------------------------------------


async def test_a_silence_mutes_at_once_and_an_unsilence_ends_it_at_once(manager: Manager) -> None:
    await history(manager)
    manager.advance(T0 + 100 * S)
    made = await manager.ask(
        SILENCE,
        SilenceRequest(
            matchers=("alertname=price_move", "symbol=~ETH.*"),
            duration_s=D("3600.5"),
            created_by="ops",
            comment="exchange maintenance",
        ),
    )
    assert isinstance(made, SilenceChanged)
    assert made == SilenceChanged(
        silence_id=made.silence_id,
        matchers=["alertname=price_move", "symbol=~ETH.*"],
        starts_ts_ns=T0 + 100 * S,
        ends_ts_ns=T0 + 100 * S + 3600 * S + S // 2,
        created_by="ops",
        comment="exchange maintenance",
        expired_ts_ns=None,
    )
    assert made in manager.rec.payloads(SilenceChanged, channel=channels.ALERT_DATA)

    muted = await manager.raise_alert(T0 + 110 * S, "price_move", symbol="ETH/USDT")
    assert muted is not None and muted.muted_by == f"silence:{made.silence_id}"
    loud = await manager.raise_alert(T0 + 111 * S, "price_move", symbol="SOL/USDT")
    assert loud is not None and loud.muted_by is None

    manager.advance(T0 + 200 * S)
    ended = await manager.ask(UNSILENCE, UnsilenceRequest(silence_id=made.silence_id, by="ops"))
    expected_end = SilenceChanged(
        **{
            **{f: getattr(made, f) for f in made.__struct_fields__},
            "expired_ts_ns": T0 + 200 * S,
        }
    )
    assert ended == expected_end
    assert ended in manager.rec.payloads(SilenceChanged, channel=channels.ALERT_DATA)
    await manager.raise_alert(T0 + 201 * S, "price_move", symbol="ETH/USDT", state="resolved")
    after = await manager.raise_alert(T0 + 210 * S, "price_move", symbol="ETH/USDT")
    assert after is not None and after.muted_by is None  # the engine knows at once

    manager.advance(T0 + 300 * S)
    again = await manager.ask(UNSILENCE, UnsilenceRequest(silence_id=made.silence_id, by="x"))
    assert again == expected_end  # ended already: unchanged


async def test_silences_list_newest_first_and_paging(manager: Manager) -> None:
    made = []
    for i, (matcher, duration) in enumerate(
        [("exchange=kraken", D(60)), ("severity=low", D(600)), ("alertname=daily_loss", D(900))]
    ):
        manager.advance(T0 + i * S)
        made.append(
            await manager.ask(
                SILENCE, SilenceRequest(matchers=(matcher,), duration_s=duration, created_by="ops")
            )
        )
    first, second, third = made
    page = await manager.ask(SILENCES, SilencesRequest())
    assert page == SilencesPage(total=3, items=(third, second, first))

    manager.advance(T0 + 5 * S)
    ended = await manager.ask(UNSILENCE, UnsilenceRequest(silence_id=second.silence_id, by="ops"))
    manager.advance(T0 + 90 * S)  # the first has run out by time
    assert await manager.ask(SILENCES, SilencesRequest()) == SilencesPage(total=1, items=(third,))
    everything = await manager.ask(SILENCES, SilencesRequest(include_expired=True))
    assert everything == SilencesPage(total=3, items=(third, ended, first))
    assert ended.expired_ts_ns == T0 + 5 * S
    paged = await manager.ask(SILENCES, SilencesRequest(include_expired=True, limit=1, offset=2))
    assert paged == SilencesPage(total=3, items=(first,))


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (SilenceRequest(matchers=(), duration_s=D(60), created_by="ops"), "matchers"),
        (SilenceRequest(matchers=("no operator",), duration_s=D(60), created_by="ops"), "matchers"),
        (SilenceRequest(matchers=("symbol=~[",), duration_s=D(60), created_by="ops"), "matchers"),
        (SilenceRequest(matchers=("a=b",), duration_s=D(0), created_by="ops"), "duration_s"),
        (SilenceRequest(matchers=("a=b",), duration_s=D(-5), created_by="ops"), "duration_s"),
        (SilenceRequest(matchers=("a=b",), duration_s=D("1E-10"), created_by="ops"), "duration_s"),
        (SilenceRequest(matchers=("a=b",), duration_s=D("1E+12"), created_by="ops"), "duration_s"),
        (SilenceRequest(matchers=("a=b",), duration_s=D("NaN"), created_by="ops"), "duration_s"),
        (SilenceRequest(matchers=("a=b",), duration_s=D(60), created_by=""), "created_by"),
    ],
)
async def test_silence_refusals_store_nothing(
    manager: Manager, request_: SilenceRequest, field: str
) -> None:
    manager.advance(T0)
    refused = await manager.ask(SILENCE, request_)
    assert isinstance(refused, Refused)
    assert (refused.code, refused.field) == ("invalid", field)
    everything = await manager.ask(SILENCES, SilencesRequest(include_expired=True))
    assert everything == SilencesPage(total=0, items=())
    assert manager.plugin.engine.silences() == []


async def test_unsilence_refusals(manager: Manager) -> None:
    missing = await manager.ask(UNSILENCE, UnsilenceRequest(silence_id="nope", by="ops"))
    assert isinstance(missing, Refused)
    assert (missing.code, missing.field) == ("not_found", "silence_id")
    empty = await manager.ask(UNSILENCE, UnsilenceRequest(silence_id="", by="ops"))
    assert (empty.code, empty.field) == ("invalid", "silence_id")


async def test_the_plugin_declares_its_endpoints() -> None:
    assert set(AlertManagerPlugin.serves) == {ALERTS, ACK, SILENCE, SILENCES, UNSILENCE}
