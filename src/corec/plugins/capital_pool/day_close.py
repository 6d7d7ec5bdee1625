"""Closing a day of the pool (``capital_pool.close_day``): its valuation at the cut-off,
each member's units, equity and flows, the day's realized profit, and the distributions
of members who do not reinvest.

Distribution rule: when the day's realized PnL net of fees is positive, a member with
``reinvest: false`` is paid ``realized × their units ÷ units outstanding`` at the
cut-off, rounded down to cents and at most their equity now, as a redemption of units
at the NAV per unit of the payment (:meth:`PoolService.distribute`). Its id is
``<date>:<member>``, so closing the same day twice pays once; when free cash is short it
waits in the withdrawal queue like a withdrawal.
"""

from __future__ import annotations

from decimal import Decimal

import structlog

from corec.core import money
from corec.core.errors import InvalidInput
from corec.messages.capital_data import (
    DayClose,
    DayCloseRequest,
    DistributionRecorded,
    MemberDay,
    WithdrawalQueued,
)
from corec.plugins.capital_pool import models as m
from corec.plugins.capital_pool import repository as repo
from corec.plugins.capital_pool.service import PoolService
from corec.plugins.capital_pool.valuation import (
    first_entry_ts_ns,
    flows_between,
    pool_at,
    realized_between,
    record_close,
)

log = structlog.get_logger("corec.capital_pool")
ZERO = Decimal(0)


def distribution_id(date: str, member: str) -> str:
    """The id of ``member``'s distribution for ``date`` (one per member and day)."""
    return f"{date}:{member}"


async def _paid_before(service: PoolService, fid: str) -> tuple[Decimal, bool] | None:
    """A distribution of this id recorded or queued earlier: (amount, still queued)."""
    queued = await repo.queued_withdrawal(service.store, fid)
    if queued is not None and queued["status"] != "cancelled":
        return queued["amount_usd"], queued["status"] == "queued"  # type: ignore[return-value]
    t = m.distributions
    row = await service.store.read(
        lambda conn: conn.execute(t.select().where(t.c.distribution_id == fid)).mappings().first()
    )
    return (row["amount_usd"], False) if row is not None else None


async def _distribute(
    service: PoolService, request: DayCloseRequest, member: str, share_usd: Decimal
) -> tuple[Decimal, bool]:
    fid = distribution_id(request.date, member)
    earlier = await _paid_before(service, fid)
    if earlier is not None:
        return earlier
    equity_now = money.pay(service.ledger.member_equity_usd(member), money.CENT)
    amount = min(share_usd, equity_now)
    if amount <= 0:
        return ZERO, False
    try:
        record = await service.distribute(fid, member, amount)
    except InvalidInput as exc:  # e.g. their equity is all queued for withdrawal already
        log.warning("distribution_refused", member=member, date=request.date, reason=str(exc))
        return ZERO, False
    if isinstance(record, WithdrawalQueued):
        return record.amount_usd, True
    assert isinstance(record, DistributionRecorded)
    return record.amount_usd, False


async def close_day(service: PoolService, request: DayCloseRequest) -> DayClose:
    """Value the pool at ``request.cutoff_ts_ns``, gather the day's flows and realized
    PnL, and pay distributions (see the module docstring).

    Returns:
        :class:`DayClose`; its figures are the pool at the cut-off (before any
        distribution paid now, which is a flow of the next day).
    """

    def read(conn):  # type: ignore[no-untyped-def]
        return (
            pool_at(conn, service.ledger, request.cutoff_ts_ns),
            flows_between(conn, request.start_ts_ns, request.cutoff_ts_ns),
            realized_between(conn, request.start_ts_ns, request.cutoff_ts_ns),
            first_entry_ts_ns(conn),
        )

    async with service.write_lock:  # no entry is half-applied while memory is read
        pool, flows, (realized, fees), first_ts = await service.store.read(read)
        taken_ts_ns = service.clock.now_ns()
        if pool.valuation == "live" and request.cutoff_ts_ns <= taken_ts_ns:  # not a future day
            await service.store.write(
                lambda conn: record_close(conn, pool, request.date, taken_ts_ns)
            )
    reinvest = {str(r["name"]): bool(r["reinvest"]) for r in await repo.member_rows(service.store)}
    members = []
    for name in sorted(set(reinvest) | set(pool.member_units) | set(flows)):
        units = pool.member_units.get(name, ZERO)
        paid, queued = ZERO, False
        if (
            request.distribute
            and not reinvest.get(name, True)
            and realized > 0
            and units > 0
            and pool.units > 0
        ):
            share = money.pay(money.divide(money.multiply(realized, units), pool.units), money.CENT)
            if share > 0:
                paid, queued = await _distribute(service, request, name, share)
        members.append(
            MemberDay(
                member=name,
                reinvest=reinvest.get(name, True),
                units=units,
                equity_usd=pool.equity_usd(name),
                flows=tuple(flows.get(name, ())),
                distribution_usd=paid,
                distribution_queued=queued,
            )
        )
    return DayClose(
        date=request.date,
        cutoff_ts_ns=request.cutoff_ts_ns,
        valuation=pool.valuation,
        nav_usd=pool.nav_usd.quantize(money.CENT),
        nav_per_unit=pool.nav_per_unit.quantize(money.NAV_PER_UNIT_QUANTUM),
        units=pool.units,
        cash_usd=pool.cash_usd.quantize(money.CENT),
        allocated_usd=pool.allocated_usd.quantize(money.CENT),
        unrealized_pnl_usd=pool.unrealized_pnl_usd.quantize(money.CENT),
        realized_pnl_usd=realized.quantize(money.CENT),
        fees_usd=fees.quantize(money.CENT),
        first_entry_ts_ns=first_ts,
        members=tuple(members),
    )
