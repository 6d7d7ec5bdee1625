"""The pool's commands: contribute, withdraw, allocate, settle; state in memory,
truth in the store.

:class:`PoolService` keeps a :class:`~corec.plugins.capital_pool.ledger.Ledger` and the
withdrawal queue in memory for speed and writes every change through to the store:
commands that arrive together are stored together in one transaction (group commit).
If a write fails because another writer appended first (or changed the queue), memory
is reloaded from the store and the commands are validated and tried again; if the
database refused a command's rows, the others are stored without it. Either way memory
never drifts from the journal.
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


@dataclass
class _Staged:
    """What one command did to memory, to be stored: its journal entry (if any), the
    pool after it, its other rows, and what the command answers (``result``)."""

    entry: JournalEntry | None = None
    rows: Callable[[Connection], None] | None = None
    result: Any = None
    after: PoolFigures | None = None

    @property
    def writes(self) -> bool:
        return self.entry is not None or self.rows is not None


Stage = Callable[[Ledger], _Staged]
"""A command: validates against the ledger (raising ``InvalidInput``/``InvalidEvent``
with nothing changed), applies its change to memory, and says what to store."""


@dataclass
class _Command:
    stage: Stage
    future: asyncio.Future[_Staged]


_INSERTS = {k.name: insert(k.table) for k in (_CONTRIBUTION, _WITHDRAWAL, _DISTRIBUTION)}
_INSERT_MEMBER = insert(m.members)
_INSERT_ALLOCATION = insert(m.allocations)


def _fail(command: _Command, exc: BaseException) -> None:
    """Answer ``command`` with ``exc`` (unless its caller gave up waiting)."""
    if not command.future.done():
        command.future.set_exception(exc)


def _settle(
    conn: Connection,
    withdrawal_id: str,
    status: str,
    ts_ns: int,
    *,
    paid_usd: Decimal | None = None,
    reason: str | None = None,
) -> None:
    """Settle a queued withdrawal that memory holds as waiting; if the store no longer
    does, another writer settled it first.

    Raises:
        ConcurrencyConflict: it was not waiting any more.
    """
    if not repo.settle_queued(conn, withdrawal_id, status, ts_ns, paid_usd=paid_usd, reason=reason):
        raise ConcurrencyConflict(f"queued withdrawal {withdrawal_id} was settled meanwhile")


class PoolService:
    """The pool's commands over a store.

    Commands are applied in memory and stored with *group commit*: while one
    transaction is in flight, the commands that arrive meanwhile wait; then they are
    validated and applied in arrival order (each against the state the earlier ones
    left) and stored together in one transaction, and each command's ``await`` returns
    once that transaction committed. If it fails because another writer was first
    (:class:`~corec.core.errors.ConcurrencyConflict`), memory is reloaded and every
    command is validated and tried again (:data:`WRITE_ATTEMPTS` times at most); if it
    fails otherwise (e.g. the store refused one command's rows), memory is reloaded and
    the commands are stored one by one, so only the bad one fails. Memory always equals
    the journal once a command's ``await`` returned.

    The withdrawal queue is kept in memory too (loaded with the ledger); a transaction
    first checks that the stored queue is the one memory holds, so a withdrawal queued
    or cancelled by another writer (a CLI next to the node) is a conflict like a taken
    ``seq``: reload, validate again.

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
        self._queue = repo.WithdrawalQueue()
        self._lock = asyncio.Lock()
        self._pending: list[_Command] = []
        self._committer: asyncio.Task[None] | None = None
        self._dirty = False  # memory may differ from the store: reload before the next batch
        self._known_members: set[str] = set()
        self._stored_members: set[str] = set()
        self._announced_phase = "none"
        self.macro = MacroRisk(config.macro)
        self._announced_macro: MacroState = "normal"
        self.results_applied = 0
        self.results_ignored = 0

    @property
    def write_lock(self) -> asyncio.Lock:
        """Held while a batch of commands is validated, applied and stored: hold it to
        read memory and store as one consistent state (never while calling a command)."""
        return self._lock

    async def open(self) -> None:
        """Load the ledger from the store."""
        await self._load()
        self._announced_phase = self.ledger.figures().phase

    async def reload(self) -> None:
        """Reload the ledger, keeping the in-memory marks (they are newer than stored ones)."""
        async with self._lock:
            await self._reload()

    async def _reload(self) -> None:
        """:meth:`reload` (the caller holds the write lock)."""
        marks = dict(self.ledger.marks)
        await self._load()
        self.ledger.marks.update(marks)

    async def _load(self) -> None:
        self._dirty = True
        self.ledger, self._queue = await repo.load_state(self.store, self.rules)
        self._stored_members = set(self.ledger.members)
        self.ledger.members |= self._known_members
        self._dirty = False

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

    # -- the write path: group commit ---------------------------------------------------
    async def _run(self, stage: Stage) -> _Staged:
        """Run one command through the group commit (see the class docstring); after
        its transaction committed, publish the pool's state and any phase change.

        Returns:
            the command's :class:`_Staged` (``after`` set when it journaled an entry).

        Raises:
            whatever ``stage`` raised (nothing was written for it); ConcurrencyConflict
            after :data:`WRITE_ATTEMPTS` tries; what the store raised for its rows.
        """
        loop = asyncio.get_running_loop()
        command = _Command(stage, loop.create_future())
        self._pending.append(command)
        if self._committer is None:
            self._committer = loop.create_task(self._commit_pending())
        done = await command.future
        if done.after is not None:
            await self._publish(channels.CAPITAL_DATA, pool_state_payload(done.after), None)
            await self.announce_phase(done.after)
        return done

    async def _commit_pending(self) -> None:
        """Store the waiting commands, a batch at a time, until none waits."""
        try:
            while self._pending:
                async with self._lock:
                    batch, self._pending = self._pending, []
                    await self._commit(batch)
        except BaseException as exc:  # cancelled: nobody would answer the commands left
            for command in self._pending:
                _fail(command, exc)
            self._pending = []
            raise
        finally:
            self._committer = None

    async def _commit(self, commands: list[_Command]) -> None:
        """Validate, apply and store ``commands`` in one transaction (see the class
        docstring); answer each one's future."""
        attempt = 0
        while True:
            commands = [c for c in commands if not c.future.done()]  # not cancelled
            if not commands:
                return
            attempt += 1
            try:
                if self._dirty:
                    await self._reload()
                version = self._queue.version
                staged = [self._stage(c) for c in commands]
                changes = [
                    repo.Change(s.entry, s.after, s.rows)
                    for s in staged
                    if isinstance(s, _Staged) and s.writes
                ]
                if changes:
                    self._dirty = True  # memory is ahead of the store until COMMIT
                    await repo.write_changes(self.store, changes, version)
                    self._dirty = False
            except ConcurrencyConflict as exc:
                if attempt >= WRITE_ATTEMPTS:
                    for command in commands:
                        _fail(command, exc)
                    return
                log.info(
                    "ledger_conflict_retry",
                    ref=next((c.entry.ref for c in changes if c.entry is not None), None),
                    commands=len(commands),
                    attempt=attempt,
                )
                # another writer is active: step aside a little (jittered) before retrying
                await asyncio.sleep(random.uniform(0, CONFLICT_BACKOFF_S * attempt))
                continue
            except Exception as exc:
                if len(commands) > 1:  # find the bad one: store them one by one
                    for command in commands:
                        await self._commit([command])
                else:
                    _fail(commands[0], exc)
                return
            for command, outcome in zip(commands, staged, strict=True):
                if isinstance(outcome, BaseException):
                    _fail(command, outcome)
                else:
                    command.future.set_result(outcome)
            return

    def _stage(self, command: _Command) -> _Staged | Exception:
        """One command against memory: its change, or why it was refused."""
        try:
            staged = command.stage(self.ledger)
        except Exception as exc:  # refused: the command changed nothing
            return exc
        if staged.entry is not None:
            staged.after = self.ledger.figures()
        return staged

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
        fid = contribution_id or new_id()
        ts_ns = self.clock.now_ns()
        ref = f"{_CONTRIBUTION.name}:{fid}"

        def stage(ledger: Ledger) -> _Staged:
            if ref in ledger.refs:
                return _Staged()  # recorded already
            return self._stage_flow(ledger, _CONTRIBUTION, fid, member, amount_usd, ts_ns)

        done = await self._run(stage)
        record = await self._flow_record(_CONTRIBUTION, fid, member, amount_usd, done)
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
        ts_ns = self.clock.now_ns()
        ref = f"{kind.name}:{fid}"

        def stage(ledger: Ledger) -> _Staged:
            if fid in self._queue.rows:
                return _Staged(result="in_queue")  # a repeat of a queued id
            if ref in ledger.refs:
                return _Staged()  # recorded already
            if not self._queue.head():  # nobody waits: pay now if free cash covers it
                try:
                    return self._stage_flow(ledger, kind, fid, member, amount_usd, ts_ns)
                except InsufficientFreeCash:
                    pass  # queued below
            mine = self._queue.owed_usd(member)
            ledger.check_withdrawable(fid, member, amount_usd, mine)
            ahead = self._queue.owed_usd()
            row = {
                "withdrawal_id": fid,
                "member": member,
                "amount_usd": amount_usd,
                "status": "queued",
                "queued_ts_ns": ts_ns,
                "kind": kind.name,
            }
            self._queue.add(row)
            return _Staged(
                rows=lambda conn: repo.insert_queued(conn, row), result=("queued", ahead)
            )

        done = await self._run(stage)
        if done.result == "in_queue":
            queued = await repo.queued_withdrawal(self.store, fid)
            assert queued is not None  # memory holds committed rows only once answered
            return await self._queue_replay(queued, member, amount_usd)
        if not (isinstance(done.result, tuple) and done.result[0] == "queued"):
            return await self._flow_record(kind, fid, member, amount_usd, done)
        ahead = done.result[1]
        record = WithdrawalQueued(
            withdrawal_id=fid,
            member=member,
            amount_usd=amount_usd,
            ahead_usd=ahead,
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

        def stage(_ledger: Ledger) -> _Staged:
            if not self._queue.is_waiting(withdrawal_id):
                return _Staged(result=False)  # settled meanwhile, or queued by another writer
            self._queue.settle(withdrawal_id, "cancelled")
            return _Staged(
                rows=lambda conn: _settle(
                    conn, withdrawal_id, "cancelled", ts_ns, reason=record.reason
                ),
                result=True,
            )

        done = await self._run(stage)
        if not done.result:
            if withdrawal_id not in self._queue.rows:  # queued by another writer: catch up
                self._dirty = True
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
        while self._queue.head() is not None:  # memory: no round trip when nobody waits
            ts_ns = self.clock.now_ns()
            done = await self._run(lambda ledger, t=ts_ns: self._stage_pay_head(ledger, t))
            if done.result is None:
                break  # the head waits for more cash; nobody overtakes it
            action, row = done.result[0], done.result[1]
            fid, member = str(row["withdrawal_id"]), str(row["member"])
            if action == "cancelled":
                await self._publish(
                    channels.CAPITAL_DATA,
                    WithdrawalCancelled(
                        withdrawal_id=fid,
                        member=member,
                        amount_usd=row["amount_usd"],
                        reason=f"nothing left to pay: {member}'s equity is 0",
                    ),
                    fid,
                )
                continue
            amount = done.result[2]
            done.result = done.result[3]  # the NAV per unit it was priced at
            await self._flow_record(_REDEMPTIONS[str(row["kind"])], fid, member, amount, done)
            log.info(
                "queued_withdrawal_paid", withdrawal_id=fid, member=member, paid_usd=str(amount)
            )
            paid += 1
        return paid

    def _stage_pay_head(self, ledger: Ledger, ts_ns: int) -> _Staged:
        """Pay (or cancel, when the member has nothing left) the head of the queue;
        ``result`` None when there is none or free cash does not cover it."""
        row = self._queue.head()
        if row is None:
            return _Staged()
        fid, member = str(row["withdrawal_id"]), str(row["member"])
        equity = money.pay(ledger.member_equity_usd(member), money.CENT)
        amount = min(row["amount_usd"], equity)
        if amount <= 0:
            self._queue.settle(fid, "cancelled")
            return _Staged(
                rows=lambda conn: _settle(
                    conn, fid, "cancelled", ts_ns, reason="nothing left to pay"
                ),
                result=("cancelled", row),
            )
        if amount > money.pay(ledger.cash_usd, money.CENT):
            return _Staged()  # the head waits for more cash
        kind = _REDEMPTIONS[str(row["kind"])]
        if f"{kind.name}:{fid}" in ledger.refs:  # journaled already (older data): not twice
            self._queue.settle(fid, "paid")
            return _Staged(
                rows=lambda conn: _settle(conn, fid, "paid", ts_ns, reason="journaled earlier"),
                result=("cancelled", row),
            )
        staged = self._stage_flow(
            ledger,
            kind,
            fid,
            member,
            amount,
            ts_ns,
            also=lambda conn: _settle(conn, fid, "paid", ts_ns, paid_usd=amount),
        )
        self._queue.settle(fid, "paid")
        staged.result = ("paid", row, amount, staged.result)
        return staged

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

    def _stage_flow(
        self,
        ledger: Ledger,
        kind: _FlowKind,
        fid: str,
        member: str,
        amount_usd: Decimal,
        ts_ns: int,
        *,
        also: Callable[[Connection], object] | None = None,
    ) -> _Staged:
        """Validate and apply one contribution or withdrawal; ``result`` is the NAV per
        unit it is priced at."""
        price = money.nav_per_unit(ledger.nav_usd(), ledger.units_outstanding)
        entry = kind.journal(ledger, fid, member, amount_usd, ts_ns)  # raises: refused
        ledger.apply(entry)
        new_member = member not in self._stored_members
        self._stored_members.add(member)  # stored with this entry
        row = {
            kind.id_column: fid,
            "member": member,
            "amount_usd": amount_usd,
            "units": abs(entry.lines[1].units),
            "nav_per_unit": money.to_stored(price),
            "entry_seq": entry.seq,
            "ts_ns": ts_ns,
        }
        insert_flow = _INSERTS[kind.name]

        def write(conn: Connection) -> None:
            if new_member:  # a configured member's first flow stores the member too
                conn.execute(_INSERT_MEMBER, {"name": member, "created_ts_ns": ts_ns})
            conn.execute(insert_flow, row)
            if also is not None:  # in the same transaction (a queue row marked paid)
                also(conn)

        return _Staged(entry=entry, rows=write, result=price)

    async def _flow_record(
        self, kind: _FlowKind, fid: str, member: str, amount_usd: Decimal, done: _Staged
    ) -> Any:
        """The record of a stored flow, published; or the first record of a repeat."""
        entry = done.entry
        if entry is None:
            return await self._replayed_flow(kind, fid, member, amount_usd)
        record = kind.record(
            **{kind.id_column: fid},
            member=member,
            amount_usd=amount_usd,
            units=abs(entry.lines[1].units),
            nav_per_unit=done.result.quantize(money.NAV_PER_UNIT_QUANTUM),
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

        macro = self.macro.assess(ts_ns)
        await self._announce_macro(macro)

        def stage(ledger: Ledger) -> _Staged:
            reserved = self._queue.owed_usd()  # owed to queued withdrawals: not granted
            decision = ledger.size_allocation(request.stop_loss_pct, macro.multiplier, reserved)
            if decision.refusal_code is not None:
                return _Staged(result=decision)
            allocation = self._allocation(allocation_id, request, decision.amount_usd, ts_ns)
            entry = ledger.allocation(allocation)
            ledger.apply(entry)
            ledger.add_allocation(allocation)
            row = dict(
                allocation_id=allocation_id,
                strategy=request.strategy,
                exchange=request.exchange,
                market=request.market,
                symbol=request.symbol,
                side=request.side,
                amount_usd=decision.amount_usd,
                status="open",
                granted_seq=entry.seq,
                granted_ts_ns=ts_ns,
            )
            return _Staged(
                entry=entry,
                rows=lambda conn: conn.execute(_INSERT_ALLOCATION, row),
                result=decision,
            )

        done = await self._run(stage)
        decision = done.result
        if done.entry is None:
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

        def known() -> bool:
            return allocation_id in self.ledger.allocations or (
                ref is not None and ref in self.ledger.refs
            )

        if known():  # the common case: no lock, no round trip
            return
        async with self._lock:
            if not known():
                await self._reload()

    async def on_position_opened(self, opened: PositionOpened) -> None:
        """Record the fill of an allocation so it is marked in NAV.

        Raises:
            InvalidEvent: it does not match an open allocation (see ``Ledger.check_opened``).
        """
        await self._know_allocation(opened.allocation_id, f"trade:{opened.trade_id}")

        def stage(ledger: Ledger) -> _Staged:
            updated = ledger.check_opened(opened)
            if updated is None:
                return _Staged()
            ledger.add_allocation(updated)
            pos = updated.position
            assert pos is not None
            return _Staged(
                rows=lambda conn: repo.update_allocation(
                    conn,
                    updated.allocation_id,
                    trade_id=pos.trade_id,
                    quantity=pos.quantity,
                    entry_price=pos.entry_price,
                    entry_fee_usd=pos.entry_fee_usd,
                    opened_ts_ns=pos.opened_ts_ns,
                ),
                result=updated,
            )

        done = await self._run(stage)
        if done.result is None:
            self.results_ignored += 1

    async def on_trade_closed(self, closed: TradeClosed) -> None:
        """Settle a closed trade into cash exactly once (by ``trade_id``).

        Raises:
            InvalidEvent: it does not match an open allocation.
        """
        await self._know_allocation(closed.allocation_id, f"trade:{closed.trade_id}")
        booked_ts_ns = self.clock.now_ns()  # booked now, in journal order (the close is kept)

        def stage(ledger: Ledger) -> _Staged:
            alloc = ledger.allocations.get(closed.allocation_id)
            entry = ledger.settlement(closed, booked_ts_ns)
            if entry is None:
                return _Staged()
            ledger.apply(entry)
            ledger.release_allocation(closed.allocation_id)
            values = dict(
                status="released",
                trade_id=closed.trade_id,
                quantity=closed.quantity,
                entry_price=closed.entry_price,
                released_seq=entry.seq,
                released_ts_ns=closed.closed_ts_ns,
                realized_pnl_usd=_booked_realized(entry),
            )
            return _Staged(
                entry=entry,
                rows=lambda conn: repo.update_allocation(conn, closed.allocation_id, **values),
                result=alloc,
            )

        done = await self._run(stage)
        entry, alloc = done.entry, done.result
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
        if done.after is not None and done.after.cash_usd < 0:  # a loss beyond its allocation
            await self._alert(
                "pool_cash_negative",
                f"trade {closed.trade_id} lost {-_booked_realized(entry):.2f} USD, more than "
                f"its allocation of {alloc.amount_usd:.2f} USD: the pool's free cash is "
                f"{money.pay(done.after.cash_usd, money.CENT)} USD; no withdrawal or "
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
        ts_ns = self.clock.now_ns()

        def stage(ledger: Ledger) -> _Staged:
            alloc = ledger.allocations.get(unused.allocation_id)
            entry = ledger.return_unused(unused.allocation_id, unused.reason, ts_ns)
            if entry is None:
                return _Staged()
            ledger.apply(entry)
            ledger.release_allocation(unused.allocation_id)
            return _Staged(
                entry=entry,
                rows=lambda conn: repo.update_allocation(
                    conn,
                    unused.allocation_id,
                    status=status,
                    released_seq=entry.seq,
                    released_ts_ns=ts_ns,
                ),
                result=alloc,
            )

        done = await self._run(stage)
        alloc = done.result
        if done.entry is None or alloc is None:
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
