"""capital_pool's query endpoints (``capital_pool.state|members|flows|contribute|
withdraw|statement``): what the API and the CLI read and change, one code path for both.

Reads come from the service's in-memory ledger (units, equity at the latest marks) and
its store (flows, members, the queue), taken under the service's write lock so memory
and store are one consistent state. Commands go through :class:`PoolService` exactly as
``corec pool contribute|withdraw`` do (group commit, idempotent by id). A client's
mistake is answered with :class:`~corec.core.queries.Refused` naming the field at fault;
anything else raises (the node's to fix).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any, get_args

from sqlalchemy import Connection, select

from corec.core import money
from corec.core.clock import utc_date
from corec.core.errors import InvalidInput
from corec.core.events import Payload
from corec.core.queries import Refused, page, paging_refusal
from corec.messages.capital_data import (
    ContributeRequest,
    ContributionRecorded,
    FlowKind,
    FlowRecord,
    FlowsPage,
    FlowsRequest,
    MembersPage,
    MembersRequest,
    MemberStatement,
    MemberSummary,
    PoolState,
    PoolStateRequest,
    StatementRequest,
    WithdrawalQueued,
    WithdrawalRecorded,
    WithdrawRequest,
)
from corec.plugins.capital_pool import models as m
from corec.plugins.capital_pool import repository as repo
from corec.plugins.capital_pool.config import MEMBER_NAME_PATTERN
from corec.plugins.capital_pool.errors import (
    BelowMinimum,
    ConflictingReplay,
    Insolvent,
    InsufficientEquity,
    InvalidAmount,
    UnknownMember,
    WithdrawalWasCancelled,
)
from corec.plugins.capital_pool.service import PoolService, pool_state_payload
from corec.plugins.capital_pool.statement import Statement, build_statement
from corec.plugins.capital_pool.valuation import FLOW_TABLES

ZERO = Decimal(0)
FLOW_KINDS: tuple[str, ...] = get_args(FlowKind)
MAX_FLOW_ID_LENGTH = 64
"""Longest client id of a contribution or withdrawal (the flow tables' key)."""
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TS_MIN, _TS_MAX = -(2**63), 2**63 - 1


# -- shared computations (the CLI calls these too) --------------------------------------------
async def pool_state(service: PoolService) -> PoolState:
    """The pool now, as published on ``capital_data`` (:func:`pool_state_payload`)."""
    async with service.write_lock:  # no command half-applied in memory
        return pool_state_payload(service.ledger.figures())


def _flow_totals(conn: Connection) -> dict[str, dict[str, Decimal]]:
    """member → kind → sum of their journaled flows (USD; summed here, not by SQLite)."""
    totals: dict[str, dict[str, Decimal]] = {}
    for kind, table, _ in FLOW_TABLES:
        t: Any = table
        for member, amount in conn.execute(select(t.c.member, t.c.amount_usd)):
            per = totals.setdefault(member, dict.fromkeys(FLOW_KINDS, ZERO))
            per[kind] += amount
    return totals


async def member_summaries(service: PoolService, member: str | None = None) -> list[MemberSummary]:
    """Every stored member (only ``member`` when given), sorted by name: reinvest choice,
    units and equity at the latest marks (equity rounded down to cents: the figures of
    ``corec members list``), what they paid in and got out, and their PnL
    (``equity + withdrawn + distributed - contributed``)."""
    members_t = m.members
    query = select(members_t).order_by(members_t.c.name)
    if member is not None:
        query = query.where(members_t.c.name == member)

    def read(conn: Connection) -> tuple[list[Any], dict[str, dict[str, Decimal]]]:
        return list(conn.execute(query).mappings()), _flow_totals(conn)

    async with service.write_lock:
        rows, totals = await service.store.read(read)
        ledger = service.ledger
        out = []
        for row in rows:
            name = str(row["name"])
            equity = money.pay(ledger.member_equity_usd(name), money.CENT)
            flows = totals.get(name, dict.fromkeys(FLOW_KINDS, ZERO))
            out.append(
                MemberSummary(
                    member=name,
                    reinvest=bool(row["reinvest"]),
                    units=ledger.member_units.get(name, ZERO),
                    equity_usd=equity,
                    contributed_usd=flows["contribution"],
                    withdrawn_usd=flows["withdrawal"],
                    distributed_usd=flows["distribution"],
                    pnl_usd=equity
                    + flows["withdrawal"]
                    + flows["distribution"]
                    - flows["contribution"],
                    joined_ts_ns=int(row["created_ts_ns"]),
                )
            )
    return out


def _read_flows(
    conn: Connection,
    kind: str | None,
    member: str | None,
    from_ts_ns: int,
    to_ts_ns: int,
) -> list[FlowRecord]:
    """Journaled flows and queued (or cancelled) redemptions matching the filters,
    newest first (journaled ones in journal order at equal times)."""
    found: list[tuple[tuple[int, int, int], FlowRecord]] = []
    for flow_kind, table, id_column in FLOW_TABLES:
        if kind not in (None, flow_kind):
            continue
        t: Any = table
        query = select(t).where(t.c.ts_ns >= from_ts_ns, t.c.ts_ns < to_ts_ns)
        if member is not None:
            query = query.where(t.c.member == member)
        for row in conn.execute(query).mappings():
            record = FlowRecord(
                flow_id=row[id_column],
                kind=flow_kind,
                member=row["member"],
                amount_usd=row["amount_usd"],
                units=row["units"],
                nav_per_unit=row["nav_per_unit"].quantize(money.NAV_PER_UNIT_QUANTUM),
                ts_ns=row["ts_ns"],
                status="done",
            )
            found.append(((row["ts_ns"], 1, row["entry_seq"]), record))
    if kind != "contribution":
        q = m.withdrawal_queue
        query = select(q).where(
            q.c.status.in_(("queued", "cancelled")),  # a paid one is a journaled flow
            q.c.queued_ts_ns >= from_ts_ns,
            q.c.queued_ts_ns < to_ts_ns,
        )
        if member is not None:
            query = query.where(q.c.member == member)
        if kind is not None:
            query = query.where(q.c.kind == kind)
        for row in conn.execute(query).mappings():
            record = FlowRecord(
                flow_id=row["withdrawal_id"],
                kind=row["kind"],
                member=row["member"],
                amount_usd=row["amount_usd"],
                units=None,
                nav_per_unit=None,
                ts_ns=row["queued_ts_ns"],
                status=row["status"],
            )
            found.append(((row["queued_ts_ns"], 0, row["position"]), record))
    found.sort(key=lambda f: f[0], reverse=True)
    return [record for _, record in found]


async def list_flows(
    service: PoolService,
    *,
    kind: str | None = None,
    member: str | None = None,
    from_ts_ns: int | None = None,
    to_ts_ns: int | None = None,
) -> list[FlowRecord]:
    """Contributions, withdrawals (queued and cancelled ones included) and distributions
    with ``from_ts_ns <= ts_ns < to_ts_ns`` (UTC ns; open when ``None``), newest first.
    A queued or cancelled redemption has no units or price yet (``None``)."""
    start = _TS_MIN if from_ts_ns is None else from_ts_ns
    end = _TS_MAX if to_ts_ns is None else to_ts_ns
    return await service.store.read(lambda conn: _read_flows(conn, kind, member, start, end))  # type: ignore[no-any-return]


async def read_statement(
    service: PoolService, member: str, from_date: date | None, to_date: date | None
) -> Statement:
    """``member``'s statement (:func:`build_statement`) at the service's clock, memory and
    store read as one state.

    Raises:
        UnknownMember: not a member; InvalidInput: a bad period.
    """
    async with service.write_lock:
        now_ns = service.clock.now_ns()
        return await service.store.read(  # type: ignore[no-any-return]
            lambda conn: build_statement(conn, service.ledger, member, from_date, to_date, now_ns)
        )


def statement_payload(s: Statement) -> MemberStatement:
    """The :class:`MemberStatement` of a statement (same figures, flows oldest first)."""
    return MemberStatement(
        member=s.member,
        from_date=s.from_date.isoformat(),
        to_date=s.to_date.isoformat(),
        opening_units=s.opening.units,
        opening_equity_usd=s.opening.equity_usd,
        opening_nav_per_unit=s.opening.nav_per_unit,
        closing_units=s.closing.units,
        closing_equity_usd=s.closing.equity_usd,
        closing_nav_per_unit=s.closing.nav_per_unit,
        contributions_usd=s.contributions_usd,
        withdrawals_usd=s.withdrawals_usd,
        distributions_usd=s.distributions_usd,
        net_flow_usd=s.net_flow_usd,
        pnl_usd=s.pnl_usd,
        twr=s.time_weighted_return,
        xirr=s.money_weighted_return,
        valuation=s.closing.valuation,  # type: ignore[arg-type]
        flows=tuple(
            FlowRecord(
                flow_id=line.flow.flow_id,
                kind=line.flow.kind,
                member=s.member,
                amount_usd=line.flow.amount_usd,
                units=line.flow.units,
                nav_per_unit=line.flow.nav_per_unit,
                ts_ns=line.flow.ts_ns,
                status="done",
            )
            for line in s.lines
        ),
    )


# -- the responders ------------------------------------------------------------------------


def _parse_date(value: Any, field: str) -> date | Refused | None:
    if value is None:
        return None
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    return Refused(
        code="invalid",
        message=f"{field}: expected a date as YYYY-MM-DD, got {value!r}",
        field=field,
    )


def _unknown_member(member: str) -> Refused:
    return Refused(code="not_found", message=f"unknown member {member!r}", field="member")


def _expect(payload: Payload, cls: type[Payload], endpoint: str) -> None:
    """A request of the wrong class is the caller's bug, not a client's mistake."""
    if not isinstance(payload, cls):
        raise TypeError(f"{endpoint} expects a {cls.__name__}, got {type(payload).__name__}")


class PoolQueries:
    """The responders of capital_pool's query endpoints over one :class:`PoolService`.

    Each takes its request payload and returns the reply payload or a
    :class:`~corec.core.queries.Refused`; see :mod:`corec.messages.capital_data` for the
    shapes. A member another writer registered (``corec members add`` beside the node)
    is picked up: the ledger is reloaded when the store knows a name memory does not.
    """

    def __init__(self, service: PoolService) -> None:
        self.service = service

    async def _is_member(self, member: str) -> bool:
        """Whether ``member`` is registered (reloading memory if only the store knows)."""
        if member in self.service.ledger.members:
            return True
        stored = {str(r["name"]) for r in await repo.member_rows(self.service.store)}
        if member not in stored:
            return False
        await self.service.reload()
        return True

    async def state(self, payload: Payload) -> Payload:
        """``capital_pool.state``: :class:`PoolStateRequest` → :class:`PoolState`."""
        _expect(payload, PoolStateRequest, "capital_pool.state")
        return await pool_state(self.service)

    async def members(self, payload: Payload) -> Payload:
        """``capital_pool.members``: :class:`MembersRequest` → :class:`MembersPage`, or
        ``Refused(not_found, member)`` for an unknown ``member``."""
        _expect(payload, MembersRequest, "capital_pool.members")
        assert isinstance(payload, MembersRequest)
        if (refused := paging_refusal(payload.limit, payload.offset)) is not None:
            return refused
        if payload.member is not None and not await self._is_member(payload.member):
            return _unknown_member(payload.member)
        rows = await member_summaries(self.service, payload.member)
        total, items = page(rows, payload.limit, payload.offset)
        return MembersPage(total=total, items=items)

    async def flows(self, payload: Payload) -> Payload:
        """``capital_pool.flows``: :class:`FlowsRequest` → :class:`FlowsPage`, or
        ``Refused`` (``invalid``: ``kind`` or a time range; ``not_found``: ``member``)."""
        _expect(payload, FlowsRequest, "capital_pool.flows")
        assert isinstance(payload, FlowsRequest)
        if (refused := paging_refusal(payload.limit, payload.offset)) is not None:
            return refused
        if payload.kind is not None and payload.kind not in FLOW_KINDS:
            return Refused(
                code="invalid",
                message=f"kind must be one of {', '.join(FLOW_KINDS)}, got {payload.kind!r}",
                field="kind",
            )
        for field in ("from_ts_ns", "to_ts_ns"):
            value = getattr(payload, field)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _TS_MAX
            ):
                return Refused(
                    code="invalid",
                    message=f"{field} must be UTC nanoseconds (an integer >= 0), got {value!r}",
                    field=field,
                )
        if (
            payload.from_ts_ns is not None
            and payload.to_ts_ns is not None
            and payload.to_ts_ns <= payload.from_ts_ns
        ):
            return Refused(
                code="invalid",
                message=f"to_ts_ns {payload.to_ts_ns} must be after from_ts_ns {payload.from_ts_ns}",
                field="to_ts_ns",
            )
        if payload.member is not None and not await self._is_member(payload.member):
            return _unknown_member(payload.member)
        rows = await list_flows(
            self.service,
            kind=payload.kind,
            member=payload.member,
            from_ts_ns=payload.from_ts_ns,
            to_ts_ns=payload.to_ts_ns,
        )
        total, items = page(rows, payload.limit, payload.offset)
        return FlowsPage(total=total, items=items)

    async def contribute(self, payload: Payload) -> Payload:
        """``capital_pool.contribute``: :class:`ContributeRequest` →
        :class:`ContributionRecorded` (a repeated id: the first record), or ``Refused``.

        A name that is not a member yet is registered first (with ``reinvest``), once
        the amount has been checked against the pool's rules (a refused contribution
        registers nobody).
        """
        _expect(payload, ContributeRequest, "capital_pool.contribute")
        assert isinstance(payload, ContributeRequest)
        refused = _check_command(payload.amount_usd, payload.contribution_id, "contribution_id")
        if refused is not None:
            return refused
        if payload.reinvest is not None and not isinstance(payload.reinvest, bool):
            return Refused(
                code="invalid", message="reinvest must be true or false", field="reinvest"
            )
        service, member = self.service, payload.member
        if not isinstance(member, str) or not re.fullmatch(MEMBER_NAME_PATTERN, member):
            return Refused(
                code="invalid",
                message=f"member name {member!r}: 1 to 64 characters, a lower-case letter "
                "first, then lower-case letters, digits, '_', '.' or '-'",
                field="member",
            )
        new_member = not await self._is_member(member)
        try:
            if new_member:  # check the amount first: a refused contribution adds nobody
                probe = replace(service.ledger, members=service.ledger.members | {member})
                probe.contribution(
                    payload.contribution_id or "(new)", member, payload.amount_usd, 0
                )
                await service.add_member(
                    member, reinvest=True if payload.reinvest is None else payload.reinvest
                )
            elif payload.reinvest is not None:
                stored = next(
                    (r for r in await repo.member_rows(service.store) if r["name"] == member), None
                )
                if stored is not None and bool(stored["reinvest"]) != payload.reinvest:
                    return Refused(
                        code="conflict",
                        message=f"{member} is a member already, with "
                        f"reinvest={bool(stored['reinvest'])}",
                        field="reinvest",
                    )
            record: ContributionRecorded = await service.contribute(
                member, payload.amount_usd, payload.contribution_id
            )
        except InvalidInput as exc:
            return _refusal(exc, "contribution_id")
        return record

    async def withdraw(self, payload: Payload) -> Payload:
        """``capital_pool.withdraw``: :class:`WithdrawRequest` →
        :class:`WithdrawalRecorded`, :class:`WithdrawalQueued` (free cash is out in
        trades), or ``Refused``."""
        _expect(payload, WithdrawRequest, "capital_pool.withdraw")
        assert isinstance(payload, WithdrawRequest)
        refused = _check_command(payload.amount_usd, payload.withdrawal_id, "withdrawal_id")
        if refused is not None:
            return refused
        if not isinstance(payload.member, str) or not await self._is_member(payload.member):
            return _unknown_member(str(payload.member))
        try:
            record: WithdrawalRecorded | WithdrawalQueued = await self.service.withdraw(
                payload.member, payload.amount_usd, payload.withdrawal_id
            )
        except InvalidInput as exc:
            return _refusal(exc, "withdrawal_id")
        return record

    async def statement(self, payload: Payload) -> Payload:
        """``capital_pool.statement``: :class:`StatementRequest` →
        :class:`MemberStatement` (the figures of ``corec pool statement``), or
        ``Refused`` (``not_found``: member; ``invalid``: a date)."""
        _expect(payload, StatementRequest, "capital_pool.statement")
        assert isinstance(payload, StatementRequest)
        start = _parse_date(payload.from_date, "from_date")
        end = _parse_date(payload.to_date, "to_date")
        for parsed in (start, end):
            if isinstance(parsed, Refused):
                return parsed
        assert not isinstance(start, Refused) and not isinstance(end, Refused)
        if start is not None and end is not None and start > end:
            return Refused(
                code="invalid",
                message=f"from_date {start} is after to_date {end}",
                field="from_date",
            )
        today = utc_date(self.service.clock.now_ns())
        if start is not None and start > today:
            return Refused(
                code="invalid",
                message=f"from_date {start} is in the future (today is {today} UTC)",
                field="from_date",
            )
        if not isinstance(payload.member, str) or not await self._is_member(payload.member):
            return _unknown_member(str(payload.member))
        try:
            s = await read_statement(self.service, payload.member, start, end)
        except UnknownMember:
            return _unknown_member(payload.member)
        except InvalidInput as exc:  # the period: e.g. a to_date before their first flow
            message = str(exc).replace("--from", "from_date").replace("--to", "to_date")
            return Refused(code="invalid", message=message, field="from_date")
        return statement_payload(s)


def _check_command(amount_usd: Any, flow_id: Any, id_field: str) -> Refused | None:
    """What a command's payload must be before it reaches the ledger's rules."""
    if isinstance(amount_usd, bool) or not isinstance(amount_usd, (Decimal, int)):
        return Refused(
            code="invalid",
            message=f"amount_usd must be a decimal number of USD, got {amount_usd!r}",
            field="amount_usd",
        )
    if flow_id is not None and (
        not isinstance(flow_id, str) or not flow_id or len(flow_id) > MAX_FLOW_ID_LENGTH
    ):
        return Refused(
            code="invalid",
            message=f"{id_field} must be 1 to {MAX_FLOW_ID_LENGTH} characters, got {flow_id!r}",
            field=id_field,
        )
    return None


def _refusal(exc: InvalidInput, id_field: str) -> Refused:
    """The :class:`Refused` of a pool command's refusal (``service`` raised ``exc``)."""
    message = str(exc)
    if isinstance(exc, UnknownMember):
        return Refused(code="not_found", message=message, field="member")
    if isinstance(exc, (InvalidAmount, BelowMinimum)):
        return Refused(code="invalid", message=message, field="amount_usd")
    if isinstance(exc, InsufficientEquity):
        return Refused(code="conflict", message=message, field="amount_usd")
    if isinstance(exc, (ConflictingReplay, WithdrawalWasCancelled)):
        return Refused(code="conflict", message=message, field=id_field)
    if isinstance(exc, Insolvent):
        return Refused(code="conflict", message=message)
    return Refused(code="invalid", message=message)
