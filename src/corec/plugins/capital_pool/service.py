"""The pool's commands: contribute, withdraw, allocate, settle; state in memory,
truth in the store.

:class:`PoolService` keeps a :class:`~corec.plugins.capital_pool.ledger.Ledger` in
memory for speed and writes every change through to the store in one transaction.
If a write fails (another writer appended first, or the database refused), the
ledger is reloaded from the store and the command is validated and tried again, so
memory never drifts from the journal.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import Connection, insert, select

from corec.core import channels, money
from corec.core.clock import Clock
from corec.core.errors import ConcurrencyConflict, InvalidEvent, InvalidInput
from corec.core.events import Payload
from corec.core.ids import new_id
from corec.core.store import Store
from corec.messages.capital_data import (
    AllocationGranted,
    AllocationRefused,
    AllocationReleased,
    AllocationRequest,
    ContributionRecorded,
    DistributionRecorded,
    PhaseChanged,
    PoolState,
    WithdrawalCancelled,
    WithdrawalQueued,
    WithdrawalRecorded,
)
from corec.messages.macro_data import MacroObservation
from corec.messages.market_data import MarketSnapshot
from corec.messages.trading_results import AllocationUnused, PositionOpened, TradeClosed
from corec.plugins.capital_pool import models as m
from corec.plugins.capital_pool import repository as repo
from corec.plugins.capital_pool.config import MEMBER_NAME_PATTERN, CapitalPoolConfig
from corec.plugins.capital_pool.errors import (
    ConflictingReplay,
    InsufficientFreeCash,
    UnknownWithdrawal,
    WithdrawalAlreadyPaid,
    WithdrawalWasCancelled,
)
from corec.plugins.capital_pool.ledger import (
    Allocation,
    JournalEntry,
    Ledger,
    Phase,
    PoolFigures,
    Rules,
)
from corec.plugins.capital_pool.macro import MacroAssessment, MacroRisk, MacroState

log = structlog.get_logger("corec.capital_pool")

Publish = Callable[[str, Payload, str | None], Awaitable[None]]
Alert = Callable[[str, str, str, dict[str, str]], Awaitable[None]]
WRITE_ATTEMPTS = 20
"""Tries of one command against other writers (each after a reload and a re-validation)."""
CONFLICT_BACKOFF_S = 0.005


async def _no_publish(_channel: str, _payload: Payload, _key: str | None) -> None:
    return None


async def _no_alert(_name: str, _message: str, _severity: str, _labels: dict[str, str]) -> None:
    return None


@dataclass(frozen=True)
class _FlowKind:
    """What differs between a contribution and a withdrawal."""

    name: str
    table: Any
    id_column: str
    record: type[ContributionRecorded] | type[WithdrawalRecorded] | type[DistributionRecorded]
    journal: Callable[[Ledger, str, str, Decimal, int], JournalEntry]


_CONTRIBUTION = _FlowKind(
    "contribution", m.contributions, "contribution_id", ContributionRecorded, Ledger.contribution
)
_WITHDRAWAL = _FlowKind(
    "withdrawal", m.withdrawals, "withdrawal_id", WithdrawalRecorded, Ledger.withdrawal
)
_DISTRIBUTION = _FlowKind(
    "distribution",
    m.distributions,
    "distribution_id",
    DistributionRecorded,
    Ledger.distribution,
)
_REDEMPTIONS = {k.name: k for k in (_WITHDRAWAL, _DISTRIBUTION)}
"""What the withdrawal queue can hold, by its ``kind`` column."""


def rules_from_config(config: CapitalPoolConfig) -> Rules:
    """The ledger's :class:`Rules` from the plugin's configuration."""
    return Rules(
        min_contribution_usd=config.min_contribution_usd,
        max_active_ratio=config.max_active_ratio,
        min_allocation_usd=config.min_allocation_usd,
        phases=tuple(Phase(p.name, p.min_nav_usd, p.risk_per_trade) for p in config.phases),
    )


def pool_state_payload(figures: PoolFigures) -> PoolState:
    """``capital_data`` payload of pool figures (NAV per unit and ratios to 8 decimals)."""
    return PoolState(
        nav_usd=money.to_stored(figures.nav_usd),
        nav_per_unit=figures.nav_per_unit.quantize(money.NAV_PER_UNIT_QUANTUM),
        units=figures.units,
        cash_usd=figures.cash_usd,
        allocated_usd=figures.allocated_usd,
        unrealized_pnl_usd=money.to_stored(figures.unrealized_pnl_usd),
        phase=figures.phase,
        risk_per_trade=figures.risk_per_trade,
        active_ratio=figures.active_ratio.quantize(money.NAV_PER_UNIT_QUANTUM),
    )


class PoolService:
    """The pool's commands over a store.

    Args:
        store: capital_pool's store (migrated).
        config: the plugin configuration (rules, members).
        clock: timestamps entries.
        publish: ``publish(channel, payload, key)`` for ``capital_data`` events; a no-op
            when used from the CLI without a node.
        alert: ``alert(name, message, severity, labels)``; a no-op likewise.
    """

    def __init__(
        self,
        store: Store,
        config: CapitalPoolConfig,
        clock: Clock,
        *,
        publish: Publish | None = None,
        alert: Alert | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.rules = rules_from_config(config)
        self.clock = clock
        self._publish = publish or _no_publish
        self._alert = alert or _no_alert
        self.ledger = Ledger(rules=self.rules)
        self._lock = asyncio.Lock()
        self._known_members: set[str] = set()
        self._stored_members: set[str] = set()
        self._announced_phase = "none"
        self.macro = MacroRisk(config.macro)
        self._announced_macro: MacroState = "normal"
        self.results_applied = 0
        self.results_ignored = 0

    @property
    def write_lock(self) -> asyncio.Lock:
        """Held while a command validates, applies and stores its entry: hold it to read
        memory and store as one consistent state (never while calling a command)."""
        return self._lock

    async def open(self) -> None:
        """Load the ledger from the store."""
        await self._load()
        self._announced_phase = self.ledger.figures().phase

    async def reload(self) -> None:
        """Reload the ledger, keeping the in-memory marks (they are newer than stored ones)."""
        marks = dict(self.ledger.marks)
        await self._load()
        self.ledger.marks.update(marks)

    async def _load(self) -> None:
        self.ledger = await repo.load_ledger(self.store, self.rules)
        self._stored_members = set(self.ledger.members)
        self.ledger.members |= self._known_members

    # -- members ---------------------------------------------------------------------
    def know_members(self, names: Iterable[str]) -> None:
        """Accept flows for these members (from configuration) without writing anything:
        a member is stored with its first contribution, in the same transaction."""
        self._known_members |= set(names)
        self.ledger.members |= self._known_members

    async def register_members(self) -> None:
        """Register the configured members and record their opening contributions once
        (what a node does at start)."""
        for member in self.config.members:
            if await repo.add_member(
                self.store, member.name, self.clock.now_ns(), reinvest=member.reinvest
            ):
                log.info("member_registered", member=member.name)
            self._stored_members.add(member.name)  # stored now, by us or by another writer
        self.know_members(m.name for m in self.config.members)
        for member in self.config.members:
            if member.opening_contribution_usd is not None:
                await self.contribute(
                    member.name, member.opening_contribution_usd, f"opening-{member.name}"
                )

    async def add_member(self, name: str, *, reinvest: bool = True) -> bool:
        """Register a new member (no units until their first contribution).

        Returns:
            True when added; False when ``name`` was a member already with the same
            ``reinvest`` (a repeat changes nothing).

        Raises:
            InvalidInput: a malformed name, or a member already registered with the
                other ``reinvest`` choice.
        """
        if not re.fullmatch(MEMBER_NAME_PATTERN, name):
            raise InvalidInput(
                f"member name {name!r}: 1 to 64 characters, a lower-case letter first, then "
                "lower-case letters, digits, '_', '.' or '-'"
            )
        added = await repo.add_member(self.store, name, self.clock.now_ns(), reinvest=reinvest)
        if not added:
            stored = next(r for r in await repo.member_rows(self.store) if r["name"] == name)
            if bool(stored["reinvest"]) != reinvest:
                raise InvalidInput(
                    f"{name} is a member already, with reinvest={bool(stored['reinvest'])}"
                )
            return False
        self._stored_members.add(name)
        self.ledger.members.add(name)
        log.info("member_registered", member=name, reinvest=reinvest)
        return True

    # -- the write path ----------------------------------------------------------------
    async def _write(
        self,
        build: Callable[[Ledger], JournalEntry | None],
        extra: Callable[[JournalEntry], Callable[[Connection], None] | None],
        on_applied: Callable[[JournalEntry], None] | None = None,
    ) -> tuple[JournalEntry | None, PoolFigures, PoolFigures]:
        """Validate with ``build``, apply, store atomically; reload and retry on conflict.

        One write at a time (a lock): a command is validated against the state all
        earlier commands left, and a failed write can only undo itself.
        """
        async with self._lock:
            for attempt in range(1, WRITE_ATTEMPTS + 1):
                before = self.ledger.figures()
                entry = build(self.ledger)  # raises InvalidInput: nothing written
                if entry is None:
                    return None, before, before
                self.ledger.apply(entry)
                if on_applied is not None:
                    on_applied(entry)
                after = self.ledger.figures()
                try:
                    await repo.append_entry(self.store, entry, after, extra(entry))
                except ConcurrencyConflict:
                    await self.reload()
                    if attempt == WRITE_ATTEMPTS:
                        raise
                    log.info("ledger_conflict_retry", ref=entry.ref, attempt=attempt)
                    # another writer is active: step aside a little (jittered) before retrying
                    await asyncio.sleep(random.uniform(0, CONFLICT_BACKOFF_S * attempt))
                    continue
                except BaseException:
                    await self.reload()
                    raise
                break
        await self._publish(channels.CAPITAL_DATA, pool_state_payload(after), None)
        await self.announce_phase(after)
        return entry, before, after

    async def announce_phase(self, figures: PoolFigures | None = None) -> None:
        """Publish ``PhaseChanged`` and alert when the pool's band differs from the last
        one announced (a flow, a result or the market may have moved NAV across a band)."""
        figures = figures or self.ledger.figures()
        previous = self._announced_phase
        if figures.phase == previous:
            return
        self._announced_phase = figures.phase
        await self._publish(
            channels.CAPITAL_DATA,
            PhaseChanged(
                previous=previous,
                current=figures.phase,
                nav_usd=money.to_stored(figures.nav_usd),
                risk_per_trade=figures.risk_per_trade,
            ),
            None,
        )
        await self._alert(
            "pool_phase_changed",
            f"pool phase {previous} -> {figures.phase} at NAV {money.pay(figures.nav_usd, money.CENT)} USD; "
            f"risk per trade now {figures.risk_per_trade * 100}%",
            "medium",
            {"previous": previous, "current": figures.phase},
        )

    # -- contributions and withdrawals ------------------------------------------------
    async def contribute(
        self, member: str, amount_usd: Decimal, contribution_id: str | None = None
    ) -> ContributionRecorded:
        """Record a contribution; a repeated ``contribution_id`` returns the first record.

        Raises:
            UnknownMember, InvalidAmount, BelowMinimum, Insolvent: refused, nothing written.
        """
        record = await self._flow(_CONTRIBUTION, member, amount_usd, contribution_id)
        await self.pay_queue()  # new cash pays whoever waits first
        return record  # type: ignore[no-any-return]

    async def withdraw(
        self, member: str, amount_usd: Decimal, withdrawal_id: str | None = None
    ) -> WithdrawalRecorded | WithdrawalQueued:
        """Pay a withdrawal from free cash, or queue it when free cash is short (or other
        withdrawals are already waiting: first in, first out). A repeated id returns its
        first record or its place in the queue.

        Raises:
            UnknownMember, InvalidAmount, InsufficientEquity (with the member's queued
            withdrawals counted), ConflictingReplay, WithdrawalCancelled (the id was
            cancelled): refused, nothing written.
        """
        return await self._redeem(_WITHDRAWAL, member, amount_usd, withdrawal_id or new_id())

    async def distribute(
        self, distribution_id: str, member: str, amount_usd: Decimal
    ) -> DistributionRecorded | WithdrawalQueued:
        """Pay ``member`` a share of realized profit (units redeemed at NAV per unit),
        from free cash or, when it is short, through the withdrawal queue (first in,
        first out, like a withdrawal). Once per id: a repeat returns the first record.

        Raises:
            the errors of :meth:`withdraw`.
        """
        return await self._redeem(_DISTRIBUTION, member, amount_usd, distribution_id)

    async def _redeem(self, kind: _FlowKind, member: str, amount_usd: Decimal, fid: str) -> Any:
        queued = await repo.queued_withdrawal(self.store, fid)
        if queued is not None:
            return await self._queue_replay(queued, member, amount_usd)
        if f"{kind.name}:{fid}" in self.ledger.refs:
            return await self._replayed_flow(kind, fid, member, amount_usd)
        waiting = await repo.queued_withdrawals(self.store)
        if not waiting:
            try:
                return await self._flow(kind, member, amount_usd, fid)
            except InsufficientFreeCash:
                pass  # queued below
        mine = sum((w["amount_usd"] for w in waiting if w["member"] == member), Decimal(0))
        self.ledger.check_withdrawable(fid, member, amount_usd, mine)  # type: ignore[arg-type]
        ts_ns = self.clock.now_ns()
        await repo.add_to_queue(self.store, fid, member, amount_usd, ts_ns, kind.name)
        ahead = sum((w["amount_usd"] for w in waiting), Decimal(0))
        record = WithdrawalQueued(
            withdrawal_id=fid,
            member=member,
            amount_usd=amount_usd,
            ahead_usd=ahead,  # type: ignore[arg-type]
            queued_ts_ns=ts_ns,
            kind=kind.name,  # type: ignore[arg-type]
        )
        await self._publish(channels.CAPITAL_DATA, record, fid)
        log.info(
            "withdrawal_queued",
            kind=kind.name,
            member=member,
            amount_usd=str(amount_usd),
            ahead_usd=str(ahead),
        )
        if amount_usd >= self.config.queue_alert_usd:
            asked = "asked for" if kind is _WITHDRAWAL else "is owed a distribution of"
            await self._alert(
                "withdrawal_queued",
                f"{member} {asked} {amount_usd} USD; free cash is out in trades, queued "
                f"behind {ahead} USD and paid as allocations are released",
                "medium",
                {"member": member},
            )
        return record

    async def cancel_withdrawal(self, withdrawal_id: str) -> WithdrawalCancelled:
        """Cancel a queued withdrawal (idempotent: a cancelled one answers the same).

        Raises:
            UnknownWithdrawal: never queued; WithdrawalAlreadyPaid: paid from the queue.
        """
        row = await repo.queued_withdrawal(self.store, withdrawal_id)
        if row is None:
            raise UnknownWithdrawal(f"no queued withdrawal {withdrawal_id}")
        record = WithdrawalCancelled(
            withdrawal_id=withdrawal_id,
            member=str(row["member"]),
            amount_usd=row["amount_usd"],  # type: ignore[arg-type]
            reason="cancelled by request",
        )
        if row["status"] == "cancelled":
            return record
        if row["status"] == "paid":
            raise WithdrawalAlreadyPaid(
                f"withdrawal {withdrawal_id} was paid ({row['paid_usd']} USD): too late to cancel"
            )
        ts_ns = self.clock.now_ns()
        changed = await self.store.write(
            lambda conn: repo.settle_queued(
                conn, withdrawal_id, "cancelled", ts_ns, reason=record.reason
            )
        )
        if not changed:  # paid or cancelled meanwhile
            return await self.cancel_withdrawal(withdrawal_id)
        await self._publish(channels.CAPITAL_DATA, record, withdrawal_id)
        if record.amount_usd >= self.config.queue_alert_usd:
            await self._alert(
                "withdrawal_cancelled",
                f"{record.member}'s queued withdrawal of {record.amount_usd} USD was cancelled",
                "low",
                {"member": record.member},
            )
        await self.pay_queue()  # the next in line may fit now
        return record

    async def pay_queue(self) -> int:
        """Pay queued withdrawals first in, first out while free cash covers the head of
        the queue; each at the NAV per unit of now, at most the member's equity now.

        Returns:
            How many were paid.
        """
        paid = 0
        for row in await repo.queued_withdrawals(self.store):
            fid, member = str(row["withdrawal_id"]), str(row["member"])
            equity = money.pay(self.ledger.member_equity_usd(member), money.CENT)
            amount = min(row["amount_usd"], equity)  # type: ignore[type-var]
            ts_ns = self.clock.now_ns()
            if amount <= 0:
                await self.store.write(
                    lambda conn, f=fid, t=ts_ns: repo.settle_queued(
                        conn, f, "cancelled", t, reason="nothing left to pay"
                    )
                )
                await self._publish(
                    channels.CAPITAL_DATA,
                    WithdrawalCancelled(
                        withdrawal_id=fid,
                        member=member,
                        amount_usd=row["amount_usd"],  # type: ignore[arg-type]
                        reason=f"nothing left to pay: {member}'s equity is 0",
                    ),
                    fid,
                )
                continue
            if amount > money.pay(self.ledger.cash_usd, money.CENT):
                break  # the head waits for more cash; nobody overtakes it
            await self._flow(
                _REDEMPTIONS[str(row["kind"])],
                member,
                amount,
                fid,
                also=lambda conn, f=fid, a=amount, t=ts_ns: repo.settle_queued(
                    conn, f, "paid", t, paid_usd=a
                ),
            )
            log.info(
                "queued_withdrawal_paid", withdrawal_id=fid, member=member, paid_usd=str(amount)
            )
            paid += 1
        return paid

    async def _queue_replay(
        self, row: dict[str, Any], member: str, amount_usd: Decimal
    ) -> WithdrawalRecorded | WithdrawalQueued:
        fid = str(row["withdrawal_id"])
        if row["member"] != member or row["amount_usd"] != amount_usd:
            raise ConflictingReplay(
                f"withdrawal {fid} was queued as {row['member']} {row['amount_usd']} USD; it "
                f"cannot now be {member} {amount_usd} USD (use a new id for a new withdrawal)"
            )
        if row["status"] == "cancelled":
            raise WithdrawalWasCancelled(f"withdrawal {fid} was cancelled ({row['reason']})")
        if row["status"] == "paid":
            return await self._stored_flow(_REDEMPTIONS[str(row["kind"])], fid)
        waiting = await repo.queued_withdrawals(self.store)
        ahead = sum(
            (w["amount_usd"] for w in waiting if w["position"] < row["position"]), Decimal(0)
        )
        return WithdrawalQueued(
            withdrawal_id=fid,
            member=member,
            amount_usd=amount_usd,
            ahead_usd=ahead,  # type: ignore[arg-type]
            queued_ts_ns=row["queued_ts_ns"],
            kind=row["kind"],
        )

    async def _flow(
        self,
        kind: _FlowKind,
        member: str,
        amount_usd: Decimal,
        flow_id: str | None,
        *,
        also: Callable[[Connection], object] | None = None,
    ) -> Any:
        """Validate, journal and record one contribution or withdrawal (at most once by id)."""
        fid = flow_id or new_id()
        ref = f"{kind.name}:{fid}"
        if ref in self.ledger.refs:
            return await self._replayed_flow(kind, fid, member, amount_usd)
        ts_ns = self.clock.now_ns()
        price: list[Decimal] = []

        def build(ledger: Ledger) -> JournalEntry | None:
            if ref in ledger.refs:
                return None
            price[:] = [ledger.figures().nav_per_unit]
            return kind.journal(ledger, fid, member, amount_usd, ts_ns)

        def extra(entry: JournalEntry) -> Callable[[Connection], None]:
            new_member = member not in self._stored_members
            row = {
                kind.id_column: fid,
                "member": member,
                "amount_usd": amount_usd,
                "units": abs(entry.lines[1].units),
                "nav_per_unit": money.to_stored(price[0]),
                "entry_seq": entry.seq,
                "ts_ns": ts_ns,
            }

            def write(conn: Connection) -> None:
                if new_member:  # a configured member's first flow stores the member too
                    conn.execute(insert(m.members), {"name": member, "created_ts_ns": ts_ns})
                conn.execute(insert(kind.table), row)
                if also is not None:  # in the same transaction (a queue row marked paid)
                    also(conn)

            return write

        entry, _, _ = await self._write(build, extra)
        self._stored_members.add(member)
        if entry is None:
            return await self._replayed_flow(kind, fid, member, amount_usd)
        record = kind.record(
            **{kind.id_column: fid},
            member=member,
            amount_usd=amount_usd,
            units=abs(entry.lines[1].units),
            nav_per_unit=price[0].quantize(money.NAV_PER_UNIT_QUANTUM),
        )
        await self._publish(channels.CAPITAL_DATA, record, fid)
        log.info(
            f"{kind.name}_recorded",
            member=member,
            amount_usd=str(amount_usd),
            units=str(record.units),
        )
        return record

    async def _replayed_flow(
        self, kind: _FlowKind, flow_id: str, member: str, amount_usd: Decimal
    ) -> Any:
        """The first record of a repeated id, if the repeat says the same.

        Raises:
            ConflictingReplay: the id was recorded for another member or amount.
        """
        record = await self._stored_flow(kind, flow_id)
        if record.member != member or record.amount_usd != amount_usd:
            raise ConflictingReplay(
                f"{kind.name} {flow_id} was recorded as {record.member} "
                f"{money.pay(record.amount_usd, money.CENT)} USD; it cannot now be "
                f"{member} {amount_usd} USD (use a new id for a new {kind.name})"
            )
        return record

    async def _stored_flow(self, kind: _FlowKind, flow_id: str) -> Any:
        query = select(kind.table).where(kind.table.c[kind.id_column] == flow_id)
        row = await self.store.read(lambda conn: conn.execute(query).mappings().one())
        return kind.record(
            **{kind.id_column: flow_id},
            member=row["member"],
            amount_usd=row["amount_usd"],
            units=row["units"],
            nav_per_unit=row["nav_per_unit"].quantize(money.NAV_PER_UNIT_QUANTUM),
        )

    # -- allocations ------------------------------------------------------------------
    async def allocate(self, request: AllocationRequest) -> AllocationGranted | AllocationRefused:
        """Size and grant capital for one trade, or refuse with the reason (see
        :meth:`Ledger.size_allocation`)."""
        await self.expire_allocations()  # their capital is free again first
        ts_ns = self.clock.now_ns()
        allocation_id = new_id()
        decided: list[Any] = []

        macro = self.macro.assess(ts_ns)
        await self._announce_macro(macro)

        reserved = sum(
            (w["amount_usd"] for w in await repo.queued_withdrawals(self.store)), Decimal(0)
        )

        def build(ledger: Ledger) -> JournalEntry | None:
            decision = ledger.size_allocation(
                request.stop_loss_pct,
                macro.multiplier,
                reserved,  # type: ignore[arg-type]
            )
            decided[:] = [decision]
            if decision.refusal_code is not None:
                return None
            return ledger.allocation(
                self._allocation(allocation_id, request, decision.amount_usd, ts_ns)
            )

        def on_applied(_entry: JournalEntry) -> None:
            self.ledger.add_allocation(
                self._allocation(allocation_id, request, decided[0].amount_usd, ts_ns)
            )

        def extra(entry: JournalEntry) -> Callable[[Connection], None]:
            def write(conn: Connection) -> None:
                conn.execute(
                    insert(m.allocations),
                    dict(
                        allocation_id=allocation_id,
                        strategy=request.strategy,
                        exchange=request.exchange,
                        market=request.market,
                        symbol=request.symbol,
                        side=request.side,
                        amount_usd=decided[0].amount_usd,
                        status="open",
                        granted_seq=entry.seq,
                        granted_ts_ns=ts_ns,
                    ),
                )

            return write

        entry, _, _ = await self._write(build, extra, on_applied)
        decision = decided[0]
        if entry is None:
            log.info(
                "allocation_refused",
                strategy=request.strategy,
                code=decision.refusal_code,
                reason=decision.refusal,
            )
            return AllocationRefused(code=decision.refusal_code, reason=decision.refusal)
        granted = AllocationGranted(
            allocation_id=allocation_id,
            strategy=request.strategy,
            exchange=request.exchange,
            market=request.market,
            symbol=request.symbol,
            side=request.side,
            amount_usd=decision.amount_usd,
            nav_usd=money.to_stored(decision.nav_usd),
            risk_per_trade=decision.risk_per_trade,
            reduced=decision.reduced,
        )
        await self._publish(channels.CAPITAL_DATA, granted, allocation_id)
        return granted

    @staticmethod
    def _allocation(
        allocation_id: str, request: AllocationRequest, amount_usd: Decimal, ts_ns: int
    ) -> Allocation:
        return Allocation(
            allocation_id=allocation_id,
            strategy=request.strategy,
            exchange=request.exchange,
            market=request.market,
            symbol=request.symbol,
            side=request.side,
            amount_usd=amount_usd,
            granted_ts_ns=ts_ns,
        )

    # -- trading results ----------------------------------------------------------------
    async def _know_allocation(self, allocation_id: str, ref: str | None = None) -> None:
        """Reload when ``allocation_id`` is not open here and ``ref`` is not applied yet:
        another instance or writer may have granted it since this ledger was loaded."""
        async with self._lock:
            if allocation_id in self.ledger.allocations or (
                ref is not None and ref in self.ledger.refs
            ):
                return
            await self.reload()

    async def on_position_opened(self, opened: PositionOpened) -> None:
        """Record the fill of an allocation so it is marked in NAV.

        Raises:
            InvalidEvent: it does not match an open allocation (see ``Ledger.check_opened``).
        """
        await self._know_allocation(opened.allocation_id, f"trade:{opened.trade_id}")
        async with self._lock:
            updated = self.ledger.check_opened(opened)
            if updated is None:
                self.results_ignored += 1
                return
            await repo.record_position(self.store, updated)
            self.ledger.add_allocation(updated)

    async def on_trade_closed(self, closed: TradeClosed) -> None:
        """Settle a closed trade into cash exactly once (by ``trade_id``).

        Raises:
            InvalidEvent: it does not match an open allocation.
        """
        await self._know_allocation(closed.allocation_id, f"trade:{closed.trade_id}")
        alloc = self.ledger.allocations.get(closed.allocation_id)
        booked_ts_ns = self.clock.now_ns()  # booked now, in journal order (the close is kept)

        def build(ledger: Ledger) -> JournalEntry | None:
            return ledger.settlement(closed, booked_ts_ns)

        def on_applied(_entry: JournalEntry) -> None:
            self.ledger.release_allocation(closed.allocation_id)

        def extra(entry: JournalEntry) -> Callable[[Connection], None]:
            return lambda conn: repo.update_allocation(
                conn,
                closed.allocation_id,
                status="released",
                trade_id=closed.trade_id,
                quantity=closed.quantity,
                entry_price=closed.entry_price,
                released_seq=entry.seq,
                released_ts_ns=closed.closed_ts_ns,
                realized_pnl_usd=_booked_realized(entry),
            )

        entry, _, _ = await self._write(build, extra, on_applied)
        if entry is None:
            self.results_ignored += 1
            log.info("trade_result_already_applied", trade_id=closed.trade_id)
            return
        self.results_applied += 1
        assert alloc is not None
        await self._publish(
            channels.CAPITAL_DATA,
            AllocationReleased(
                allocation_id=closed.allocation_id,
                trade_id=closed.trade_id,
                amount_usd=alloc.amount_usd,
                realized_pnl_usd=_booked_realized(entry),
                returned_usd=entry.lines[0].amount_usd,
            ),
            closed.allocation_id,
        )
        if self.ledger.cash_usd < 0:  # a loss beyond its allocation (a leveraged position)
            await self._alert(
                "pool_cash_negative",
                f"trade {closed.trade_id} lost {-_booked_realized(entry):.2f} USD, more than "
                f"its allocation of {alloc.amount_usd:.2f} USD: the pool's free cash is "
                f"{money.pay(self.ledger.cash_usd, money.CENT)} USD; no withdrawal or "
                "allocation is possible until it is restored",
                "critical",
                {"trade_id": closed.trade_id},
            )
        await self.pay_queue()  # released capital pays queued withdrawals first

    def expired_allocations(self, now_ns: int) -> list[str]:
        """Allocations granted more than ``allocation_timeout_s`` before ``now_ns`` that
        no position uses, oldest first."""
        deadline = now_ns - int(self.config.allocation_timeout_s * 1_000_000_000)
        return [
            a.allocation_id
            for a in sorted(self.ledger.allocations.values(), key=lambda a: a.granted_ts_ns)
            if a.position is None and a.granted_ts_ns <= deadline
        ]

    async def expire_allocations(self) -> int:
        """Return the capital of every expired allocation to cash (see
        :meth:`expired_allocations`); each is released once, as ``expired``.

        Returns:
            How many were released now.
        """
        expired = self.expired_allocations(self.clock.now_ns())
        for allocation_id in expired:
            log.info("allocation_expired", allocation_id=allocation_id)
            await self.on_allocation_unused(
                AllocationUnused(
                    allocation_id=allocation_id,
                    reason=f"expired: no position within {self.config.allocation_timeout_s:g} s",
                ),
                status="expired",
            )
        return len(expired)

    async def on_allocation_unused(
        self, unused: AllocationUnused, *, status: str = "unused"
    ) -> None:
        """Return an allocation that no position used to cash (once).

        Args:
            status: the allocation's final status (``unused``, or ``expired``).

        Raises:
            InvalidEvent: unknown allocation, or one that funds a position.
        """
        await self._know_allocation(unused.allocation_id, f"unused:{unused.allocation_id}")
        alloc = self.ledger.allocations.get(unused.allocation_id)
        ts_ns = self.clock.now_ns()

        def on_applied(_entry: JournalEntry) -> None:
            self.ledger.release_allocation(unused.allocation_id)

        def extra(entry: JournalEntry) -> Callable[[Connection], None]:
            return lambda conn: repo.update_allocation(
                conn,
                unused.allocation_id,
                status=status,
                released_seq=entry.seq,
                released_ts_ns=ts_ns,
            )

        entry, _, _ = await self._write(
            lambda ledger: ledger.return_unused(unused.allocation_id, unused.reason, ts_ns),
            extra,
            on_applied,
        )
        if entry is None or alloc is None:
            self.results_ignored += 1
            return
        await self._publish(
            channels.CAPITAL_DATA,
            AllocationReleased(
                allocation_id=unused.allocation_id,
                trade_id="",
                amount_usd=alloc.amount_usd,
                realized_pnl_usd=Decimal(0),
                returned_usd=alloc.amount_usd,
            ),
            unused.allocation_id,
        )
        await self.pay_queue()

    def on_macro(self, observation: MacroObservation) -> None:
        """A new macro value (``macro_data``): the next allocation uses it."""
        self.macro.observe(observation)

    async def _announce_macro(self, macro: MacroAssessment) -> None:
        """Alert when the macro rule starts or stops cutting risk, saying why."""
        if macro.state == self._announced_macro:
            return
        previous, self._announced_macro = self._announced_macro, macro.state
        if macro.state == "normal":
            message = f"risk per trade back to the phase's: {macro.reason}"
            severity = "low"
        else:
            message = f"risk per trade × {macro.multiplier}: {macro.reason}"
            severity = "high" if macro.state in ("stale", "missing") else "medium"
        log.info("macro_risk_changed", previous=previous, state=macro.state, reason=macro.reason)
        await self._alert(
            "macro_risk",
            message,
            severity,
            {"state": macro.state, "series": self.config.macro.series},
        )

    def on_market(self, snapshot: MarketSnapshot) -> None:
        """Mark open positions of this instrument at ``snapshot.price``."""
        self.ledger.mark((snapshot.exchange, snapshot.market, snapshot.symbol), snapshot.price)

    async def save_marks(self) -> None:
        """Persist the latest marks (for NAV when no node runs)."""
        await repo.save_marks(self.store, self.ledger.marks, self.clock.now_ns())


def _booked_realized(entry: JournalEntry) -> Decimal:
    """Realized PnL net of fees as a settlement entry booked it (8 decimals): its lines
    are cash, allocated, realized PnL (credit), fees (debit)."""
    return -entry.lines[2].amount_usd - entry.lines[3].amount_usd


def check_result(payload: Any) -> PositionOpened | TradeClosed | AllocationUnused:
    """The payload if it is a trading result this plugin applies.

    Raises:
        InvalidEvent: any other payload on ``trading_results``.
    """
    if isinstance(payload, (PositionOpened, TradeClosed, AllocationUnused)):
        return payload
    raise InvalidEvent(f"trading_results carries {type(payload).__name__}, not a position or trade")


def members_report(ledger: Ledger) -> list[dict[str, Any]]:
    """Each member's units and equity (equity rounded down to cents), sorted by name."""
    nav = ledger.nav_usd()
    units_out = ledger.units_outstanding
    rows = []
    for name in sorted(ledger.members):
        units = ledger.member_units.get(name, Decimal(0))
        rows.append(
            {
                "member": name,
                "units": units,
                "equity_usd": money.pay(money.equity_usd(units, nav, units_out), money.CENT),
            }
        )
    return rows


__all__ = [
    "PoolService",
    "check_result",
    "members_report",
    "pool_state_payload",
    "rules_from_config",
]
