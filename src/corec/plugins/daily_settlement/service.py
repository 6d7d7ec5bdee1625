"""Settling the pool's days: one :class:`DailySettlement` per date, in order, once.

A day ``D`` is ``[start, cutoff)`` (see :func:`day_bounds`); it is *due* once the clock
passes its cut-off. Settling it asks capital_pool to close it
(``capital_pool.close_day``: the valuation at the cut-off, each member's units, equity
and flows, the day's realized PnL, and the distributions paid to members who do not
reinvest), then computes returns, stores everything in one transaction and publishes
the record on ``settlement_data``.

Days are settled contiguously from the pool's first journal day: after downtime, the
missed days are settled oldest first. A date already settled is answered from the
store (idempotent); a date not yet over is refused.

Returns (:mod:`corec.core.returns`):

- ``day_return`` = NAV per unit ÷ the previous day's − 1 (time-weighted; units start at
  1 USD, so the first day compares with 1);
- per member, ``time_weighted_return`` = NAV per unit ÷ NAV per unit at their first
  contribution − 1, and ``money_weighted_return`` = XIRR of their own flows with their
  equity at the cut-off as the closing value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError

from corec.core import channels, money
from corec.core.clock import Clock, datetime_to_ns, format_ts, utc_date
from corec.core.errors import InvalidInput
from corec.core.events import Payload
from corec.core.returns import RATE_QUANTUM, time_weighted_return, xirr
from corec.messages.capital_data import DayClose, DayCloseRequest, MemberDay
from corec.messages.settlement_data import DailySettlement, MemberSettlement
from corec.plugins.daily_settlement import models as m
from corec.plugins.daily_settlement.config import DailySettlementConfig

log = structlog.get_logger("corec.daily_settlement")

CloseDay = Callable[[DayCloseRequest], Awaitable[DayClose]]
Publish = Callable[[str, Payload, str | None], Awaitable[None]]
Alert = Callable[[str, str, str, dict[str, str]], Awaitable[None]]
ZERO = Decimal(0)
ONE = Decimal(1)
DAY = timedelta(days=1)


class DayNotOver(InvalidInput):
    """The date asked for has not reached its cut-off yet."""


class NothingToSettle(InvalidInput):
    """The date is before the pool's first journal entry (or the pool is empty)."""


def day_bounds(day: date, day_end_utc: time) -> tuple[int, int]:
    """``(start_ts_ns, cutoff_ts_ns)`` of ``day``: its cut-off is ``day`` at
    ``day_end_utc``, or the next midnight when ``day_end_utc`` is 00:00; it starts at
    the previous day's cut-off."""
    end = datetime.combine(day, day_end_utc, tzinfo=UTC)
    if day_end_utc == time(0, 0):
        end += DAY
    return datetime_to_ns(end - DAY), datetime_to_ns(end)


def date_of(ts_ns: int, day_end_utc: time) -> date:
    """The day whose ``[start, cutoff)`` holds ``ts_ns``."""
    candidate = utc_date(ts_ns)
    start, cutoff = day_bounds(candidate, day_end_utc)
    if ts_ns >= cutoff:
        return candidate + DAY
    if ts_ns < start:
        return candidate - DAY
    return candidate


async def _no_publish(_channel: str, _payload: Payload, _key: str | None) -> None:
    return None


async def _no_alert(_name: str, _message: str, _severity: str, _labels: dict[str, str]) -> None:
    return None


def _q(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(RATE_QUANTUM)


class SettlementService:
    """Settles days through ``close_day`` into daily_settlement's store.

    Args:
        store: daily_settlement's store (migrated).
        config: the plugin's section.
        clock: what "now" is (a replay clock in a replay).
        close_day: ``capital_pool.close_day`` (a bus request in a node; a direct call
            on a pool service from the CLI).
        publish, alert: as a plugin context's (no-ops when omitted).
    """

    def __init__(
        self,
        store: Any,
        config: DailySettlementConfig,
        clock: Clock,
        close_day: CloseDay,
        *,
        publish: Publish | None = None,
        alert: Alert | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self._close_day = close_day
        self._publish = publish or _no_publish
        self._alert = alert or _no_alert
        self._lock = asyncio.Lock()
        self._next_cutoff_ns: int | None = None
        self.settled_count = 0
        self.last_settled: str | None = None

    # -- schedule --------------------------------------------------------------------
    def latest_due(self, now_ns: int) -> date:
        """The last day whose cut-off has passed at ``now_ns``."""
        return date_of(now_ns, self.config.day_end_utc) - DAY

    def is_due(self, now_ns: int) -> bool:
        """Cheap check for a caller on every event: may a day be due now?"""
        return self._next_cutoff_ns is None or now_ns >= self._next_cutoff_ns

    async def _first_unsettled(self) -> date | None:
        """The day after the last settled one; else the pool's first journal day
        (asked with a read-only close); ``None`` while the pool is empty."""
        t = m.settlements
        last = await self.store.read(
            lambda conn: conn.execute(select(t.c.date).order_by(t.c.date.desc()).limit(1)).scalar()
        )
        if last is not None:
            return date.fromisoformat(last) + DAY
        today = date_of(self.clock.now_ns(), self.config.day_end_utc)
        start, cutoff = day_bounds(today, self.config.day_end_utc)
        probe = await self._close_day(
            DayCloseRequest(
                date=today.isoformat(), start_ts_ns=start, cutoff_ts_ns=cutoff, distribute=False
            )
        )
        if probe.first_entry_ts_ns is None:
            return None
        return date_of(probe.first_entry_ts_ns, self.config.day_end_utc)

    # -- commands --------------------------------------------------------------------
    async def run_due(self) -> list[DailySettlement]:
        """Settle every day that is due and not settled yet, oldest first."""
        return await self.run(None)

    async def run(self, until: date | None) -> list[DailySettlement]:
        """Settle the days up to ``until`` (default: the last one due), oldest first;
        a date settled already is answered from the store.

        Returns:
            The settlements of the days up to ``until`` done now, or the stored one for
            ``until`` when it was settled before.

        Raises:
            DayNotOver: ``until`` has not reached its cut-off.
            NothingToSettle: ``until`` is before the pool's first journal day.
        """
        now_ns = self.clock.now_ns()
        latest = self.latest_due(now_ns)
        if until is not None and until > latest:
            _, cutoff = day_bounds(until, self.config.day_end_utc)
            raise DayNotOver(
                f"{until} is not over: its cut-off is {format_ts(cutoff)} "
                f"(the last day due is {latest})"
            )
        target = until or latest
        async with self._lock:
            stored = await self.stored(target)
            if stored is not None:  # and so is every day before it (days are contiguous)
                if until is None:
                    self._next_cutoff_ns = day_bounds(latest + DAY, self.config.day_end_utc)[1]
                return [stored] if until is not None else []
            first = await self._first_unsettled()
            if first is None:
                if until is not None:
                    raise NothingToSettle("the pool has no journal entries yet: nothing to settle")
                return []
            if target < first:
                if until is None:  # the pool's first day is not over yet
                    self._next_cutoff_ns = day_bounds(first, self.config.day_end_utc)[1]
                    return []
                t = m.settlements
                earliest = await self.store.read(
                    lambda conn: conn.execute(select(func.min(t.c.date))).scalar()
                )
                raise NothingToSettle(
                    f"{target} is before the pool's first day, {earliest or first}"
                )
            done = []
            day = first
            while day <= target:
                done.append(await self._settle(day))
                day += DAY
            # the day after the last one settled is due at its cut-off (now, if a run
            # stopped short of the last day due)
            self._next_cutoff_ns = day_bounds(day, self.config.day_end_utc)[1]
        return done

    async def stored(self, day: date) -> DailySettlement | None:
        """The settlement of ``day`` if it was settled."""
        return await self.store.read(lambda conn: _read_settlement(conn, day.isoformat()))

    async def history(
        self, since: date | None = None, until: date | None = None
    ) -> list[DailySettlement]:
        """Stored settlements between the dates (inclusive), oldest first."""
        return await read_history(self.store, since, until)

    # -- one day -----------------------------------------------------------------------
    async def _settle(self, day: date) -> DailySettlement:
        start, cutoff = day_bounds(day, self.config.day_end_utc)
        close = await self._close_day(
            DayCloseRequest(
                date=day.isoformat(),
                start_ts_ns=start,
                cutoff_ts_ns=cutoff,
                distribute=self.config.distribute,
            )
        )
        previous = await self.stored(day - DAY)
        previous_nav_per_unit = previous.nav_per_unit if previous is not None else ONE
        settled_ts_ns = self.clock.now_ns()
        new_flows = [
            {
                "kind": f.kind,
                "flow_id": f.flow_id,
                "member": md.member,
                "date": close.date,
                "amount_usd": f.amount_usd,
                "units": f.units,
                "nav_per_unit": f.nav_per_unit,
                "ts_ns": f.ts_ns,
            }
            for md in close.members
            for f in md.flows
        ]
        history = await self.store.read(lambda conn: _flows_before(conn, cutoff))
        seen = {(r["kind"], r["flow_id"]) for rows in history.values() for r in rows}
        for row in new_flows:
            if (row["kind"], row["flow_id"]) not in seen:
                history.setdefault(str(row["member"]), []).append(row)
        members = tuple(_member(close, md, history.get(md.member, [])) for md in close.members)
        record = DailySettlement(
            date=close.date,
            start_ts_ns=start,
            cutoff_ts_ns=cutoff,
            settled_ts_ns=settled_ts_ns,
            valuation=close.valuation,
            nav_usd=close.nav_usd,
            nav_per_unit=close.nav_per_unit,
            units=close.units,
            cash_usd=close.cash_usd,
            allocated_usd=close.allocated_usd,
            unrealized_pnl_usd=close.unrealized_pnl_usd,
            realized_pnl_usd=close.realized_pnl_usd,
            fees_usd=close.fees_usd,
            net_flows_usd=sum((x.net_flow_usd for x in members), ZERO),
            distributions_usd=sum((x.distribution_usd for x in members), ZERO),
            day_return=_q(time_weighted_return(previous_nav_per_unit, close.nav_per_unit)),  # type: ignore[arg-type]
            twr_since_inception=_q(time_weighted_return(ONE, close.nav_per_unit)),  # type: ignore[arg-type]
            members=members,
        )
        unseen = [r for r in new_flows if (r["kind"], r["flow_id"]) not in seen]
        try:
            await self.store.write(lambda conn: _write(conn, record, unseen))
        except IntegrityError:  # settled meanwhile by another writer (a CLI beside a node)
            stored = await self.stored(day)
            assert stored is not None
            return stored
        self.settled_count += 1
        self.last_settled = record.date
        log.info(
            "day_settled",
            date=record.date,
            nav_usd=str(record.nav_usd),
            nav_per_unit=str(record.nav_per_unit),
            day_return=str(record.day_return),
            valuation=record.valuation,
        )
        await self._publish(channels.SETTLEMENT_DATA, record, record.date)
        await self._alert_on_loss(record)
        return record

    async def _alert_on_loss(self, record: DailySettlement) -> None:
        floor = -self.config.loss_alert_pct / 100
        if record.day_return >= floor:
            return
        await self._alert(
            "daily_loss",
            f"the pool lost {-record.day_return * 100:.2f}% on {record.date} (NAV per unit "
            f"{record.nav_per_unit}, NAV {record.nav_usd} USD); the limit is "
            f"-{self.config.loss_alert_pct}%",
            "high",
            {"date": record.date},
        )


async def read_history(
    store: Any, since: date | None = None, until: date | None = None
) -> list[DailySettlement]:
    """Stored settlements between the dates (inclusive), oldest first: read only, no
    node or pool needed (``corec status``, ``corec settlement list``)."""
    t = m.settlements
    query = select(t.c.date).order_by(t.c.date)
    if since is not None:
        query = query.where(t.c.date >= since.isoformat())
    if until is not None:
        query = query.where(t.c.date <= until.isoformat())

    def read(conn: Connection) -> list[DailySettlement]:
        dates = conn.execute(query).scalars().all()
        return [s for d in dates if (s := _read_settlement(conn, d)) is not None]

    return await store.read(read)  # type: ignore[no-any-return]


def _member(close: DayClose, md: MemberDay, flows: list[dict[str, Any]]) -> MemberSettlement:
    """A member's settlement from the day's close and their flows up to the cut-off."""
    by_kind = {
        k: sum((f.amount_usd for f in md.flows if f.kind == k), ZERO)
        for k in ("contribution", "withdrawal", "distribution")
    }
    totals = {
        k: sum((r["amount_usd"] for r in flows if r["kind"] == k), ZERO)
        for k in ("contribution", "withdrawal", "distribution")
    }
    signed = [
        (int(r["ts_ns"]), -r["amount_usd"] if r["kind"] == "contribution" else r["amount_usd"])
        for r in flows
    ]
    if md.equity_usd > 0:
        signed.append((close.cutoff_ts_ns, md.equity_usd))
    contributions = sorted(
        (r for r in flows if r["kind"] == "contribution"), key=lambda r: r["ts_ns"]
    )
    twr = (
        time_weighted_return(contributions[0]["nav_per_unit"], close.nav_per_unit)
        if contributions
        else None
    )
    return MemberSettlement(
        member=md.member,
        units=md.units,
        equity_usd=md.equity_usd,
        contributions_usd=by_kind["contribution"],
        withdrawals_usd=by_kind["withdrawal"],
        distributions_usd=by_kind["distribution"],
        net_flow_usd=by_kind["contribution"] - by_kind["withdrawal"] - by_kind["distribution"],
        distribution_usd=md.distribution_usd,
        distribution_queued=md.distribution_queued,
        pnl_usd=md.equity_usd
        + totals["withdrawal"]
        + totals["distribution"]
        - totals["contribution"],
        time_weighted_return=_q(twr),
        money_weighted_return=xirr(signed),
    )


def _flows_before(conn: Connection, cutoff_ts_ns: int) -> dict[str, list[dict[str, Any]]]:
    t = m.member_flows
    rows = conn.execute(select(t).where(t.c.ts_ns < cutoff_ts_ns).order_by(t.c.ts_ns)).mappings()
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["member"], []).append(dict(row))
    return out


def _write(conn: Connection, record: DailySettlement, flows: list[dict[str, Any]]) -> None:
    fields = {f: getattr(record, f) for f in record.__struct_fields__ if f != "members"}
    conn.execute(insert(m.settlements), fields)
    if record.members:
        conn.execute(
            insert(m.member_settlements),
            [
                {"date": record.date, **{f: getattr(x, f) for f in x.__struct_fields__}}
                for x in record.members
            ],
        )
    if flows:
        conn.execute(insert(m.member_flows), flows)


def _read_settlement(conn: Connection, day: str) -> DailySettlement | None:
    t, mt = m.settlements, m.member_settlements
    row = conn.execute(select(t).where(t.c.date == day)).mappings().first()
    if row is None:
        return None
    members = tuple(
        MemberSettlement(**_as_published({k: v for k, v in r.items() if k != "date"}))
        for r in conn.execute(select(mt).where(mt.c.date == day).order_by(mt.c.member)).mappings()
    )
    return DailySettlement(**_as_published(dict(row)), members=members)


_RATES = ("nav_per_unit", "day_return", "twr_since_inception", "time_weighted_return")


def _as_published(row: dict[str, Any]) -> dict[str, Any]:
    """Stored decimals come back without trailing zeros; give USD its cents and rates
    their 8 decimals again, as published."""
    for key, value in row.items():
        if not isinstance(value, Decimal):
            continue
        if key.endswith("_usd"):
            row[key] = value.quantize(money.CENT)
        elif key in _RATES or key == "money_weighted_return":
            row[key] = value.quantize(RATE_QUANTUM)
    return row
