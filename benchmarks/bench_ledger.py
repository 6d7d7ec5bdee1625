"""The pool's ledger on PostgreSQL with durable commits, beside pgbench's TPC-B.

Issue: "Ledger commands per second on PostgreSQL with durable commits, beside pgbench's
TPC-B run on the same machine in the same script; target: at least half of pgbench's
rate" (pgbench with 4 clients).

1. **Durability**: every scratch database, and the sessions CoreC's stores open on it,
   must show ``synchronous_commit = on`` and ``fsync = on``, or the script stops.
2. **pgbench**: ``pgbench -i -s 1`` on a scratch database, then the TPC-B run with 4
   clients (``-c 4 -j 2 -T <seconds>``) and, for comparison with one CoreC client, with
   1 client; tps "without initial connection time", and each transaction's latency from
   pgbench's per-transaction log (``-l``).
3. **CoreC**: the real :class:`~corec.plugins.capital_pool.service.PoolService` over a
   migrated capital_pool :class:`~corec.core.store.Store` (``postgresql+asyncpg://``) on
   another scratch database (a new one per variant), eight members with opening
   contributions, then rounds of: a member's contribution with a client id, an
   allocation, the position opened with it, the trade closed (settled), and a
   withdrawal with a client id. Every command but position-opened is a journal entry
   plus its rows; position-opened is an update of the allocation. A command counts once
   its ``await`` returned, i.e. after its transaction's COMMIT was acknowledged.
   Variants: ``single`` (1 client), ``shared`` (4 coroutines sharing one service, as one
   node would) and ``services`` (4 services each with its own store and connection pool
   on the same database: optimistic concurrency, conflicts and retries).
4. **Consistency**, after each variant, in SQL on the database: seq gapless, every entry
   balanced, all lines sum to zero, cash never negative, and as many rows of each kind
   as commands counted. A failed check, or a command that failed other than by giving up
   after every optimistic retry (reported, not counted, and a FAIL), makes the script
   exit non-zero: it cannot silently measure failures.

Prints a table (``--json``: machine-readable). Environment: ``COREC_BENCH_PG`` (or
``--pg``) is the admin DSN, default ``postgresql://postgres@127.0.0.1:5432/postgres``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import math
import os
import platform
import pstats
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import asyncpg
from bench_common import cpu_model, scratch_database
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

import corec.messages  # noqa: F401 - registers every payload type
from corec.core.clock import SystemClock
from corec.core.logging import close_logging, configure_logging
from corec.core.store import Store
from corec.core.store.migrate import upgrade
from corec.messages.capital_data import (
    AllocationGranted,
    AllocationRequest,
    WithdrawalQueued,
    WithdrawalRecorded,
)
from corec.messages.trading_results import PositionOpened, TradeClosed
from corec.plugins.capital_pool import repository as repo
from corec.plugins.capital_pool.config import CapitalPoolConfig, MemberConfig
from corec.plugins.capital_pool.ledger import ALLOCATED, CASH
from corec.plugins.capital_pool.plugin import CapitalPoolPlugin
from corec.plugins.capital_pool.service import WRITE_ATTEMPTS, PoolService

D = Decimal
TARGET_RATIO = 0.5
DEFAULT_PG = os.environ.get("COREC_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
MEMBERS = tuple(f"m{i:02d}" for i in range(8))
OPENING_USD = D(250_000)  # NAV 2 M: the "established" phase, 1 % risk per trade
STOP_LOSS_PCT = D(25)  # a grant is 2 M x 1 % / 25 % = 80,000 USD: 4 % of NAV
KINDS = ("contribute", "allocate", "position_opened", "trade_closed", "withdraw")
VARIANTS = {  # name: (label, clients, services)
    "single": ("1 client, 1 service", 1, 1),
    "shared": ("{n} clients, 1 shared service", None, 1),
    "services": ("{n} services, own store each", None, None),
}
DURABLE = {"synchronous_commit": "on", "fsync": "on"}
SETTINGS = ("synchronous_commit", "fsync", "wal_sync_method", "full_page_writes", "commit_delay")
CENT = D("0.01")
SATOSHI = D("0.00000001")


# -- machine and PostgreSQL ----------------------------------------------------------------


async def server_settings(dsn: str) -> dict[str, str]:
    """The durability settings a new session on ``dsn`` gets, and the server version."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        found = {name: str(await conn.fetchval(f"SHOW {name}")) for name in SETTINGS}
        found["server_version"] = str(await conn.fetchval("SHOW server_version"))
        return found
    finally:
        await conn.close()


def require_durable(settings: dict[str, str], where: str) -> None:
    """Stop unless ``settings`` make every commit durable."""
    wrong = {k: settings.get(k) for k, v in DURABLE.items() if settings.get(k) != v}
    if wrong:
        raise SystemExit(
            f"{where}: commits are not durable ({', '.join(f'{k}={v}' for k, v in wrong.items())}"
            "; need synchronous_commit=on and fsync=on): refusing to measure"
        )


# -- pgbench -------------------------------------------------------------------------------
def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (``q`` in 0..1); NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def run_command(argv: list[str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PGOPTIONS"}  # no session overrides
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:-1])} failed ({proc.returncode}):\n{text}")
    return text


def _grab(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    if found is None:
        raise SystemExit(f"pgbench output has no {pattern!r}:\n{text}")
    return float(found.group(1))


def read_latencies(folder: Path) -> list[float]:
    """Latencies (ms, ascending) from pgbench's per-transaction logs in ``folder``
    (``client tx latency_us script epoch us``; a failed one has a word instead)."""
    latencies = []
    for log in folder.glob("tx.*"):
        for line in log.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                latencies.append(int(fields[2]) / 1000)
    return sorted(latencies)


async def run_pgbench(
    pgbench: str, dsn: str, clients: int, threads: int, seconds: int
) -> dict[str, Any]:
    """One TPC-B run (tables initialized already); tps and per-transaction latency."""
    with tempfile.TemporaryDirectory(prefix="corec-pgbench-") as tmp:
        prefix = str(Path(tmp) / "tx")
        argv = [pgbench, "-c", str(clients), "-j", str(threads), "-T", str(seconds)]
        text = await run_command([*argv, "-l", f"--log-prefix={prefix}", dsn])
        latencies = read_latencies(Path(tmp))
    failed = re.search(r"number of failed transactions: (\d+)", text)
    return {
        "command": " ".join([*argv, "<db>"]),
        "clients": clients,
        "threads": threads,
        "seconds": seconds,
        "tps": _grab(r"tps = ([\d.]+) \(without initial connection time\)", text),
        "transactions": int(_grab(r"number of transactions actually processed: (\d+)", text)),
        "failed": int(failed.group(1)) if failed else 0,
        "latency_avg_ms": _grab(r"latency average = ([\d.]+) ms", text),
        "logged_transactions": len(latencies),
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
    }


async def pgbench_suite(args: argparse.Namespace) -> dict[str, Any]:
    async with scratch_database(args.pg, "pgbench") as dsn:
        settings = await server_settings(dsn)
        require_durable(settings, "pgbench database")
        await run_command([args.pgbench, "-i", "-s", "1", "-q", dsn])
        threads = min(2, args.clients)
        runs = {"ref": await run_pgbench(args.pgbench, dsn, args.clients, threads, args.seconds)}
        if not args.skip_pgbench_1:
            runs["one"] = await run_pgbench(args.pgbench, dsn, 1, 1, args.seconds)
    return {"settings": settings, "runs": runs}


# -- counting what CoreC asks of the database ------------------------------------------------
class DbCounters:
    """SQLAlchemy events of every engine in this process: checkouts from a pool (not
    pinged: the store retries a transaction found on a dead connection instead),
    transactions begun, commits, rollbacks, statements (an ``executemany`` is one)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        for name in ("begin", "commit", "rollback"):
            event.listen(Engine, name, self._counter(name))
        event.listen(Engine, "before_cursor_execute", self._counter("statements"))
        event.listen(Pool, "checkout", self._counter("checkouts"))

    def _counter(self, name: str) -> Callable[..., None]:
        def count(*_args: Any, **_kw: Any) -> None:
            self.counts[name] += 1

        return count

    def reset(self) -> None:
        self.counts.clear()


class EventCounter(logging.Handler):
    """Counts capital_pool's log events by name (``ledger_conflict_retry`` ...)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.msg
        if isinstance(msg, dict):
            self.counts[str(msg.get("event"))] += 1


# -- the ledger workload ---------------------------------------------------------------------
@dataclass
class Tally:
    """What one phase (warm-up or measured) of a variant did."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    refused: int = 0
    queued: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    granted: int = 0
    opened: int = 0
    closed: int = 0
    contributions: int = 0
    withdrawals: int = 0

    @property
    def commands(self) -> int:
        return sum(len(v) for v in self.latencies.values())


def pool_config() -> CapitalPoolConfig:
    return CapitalPoolConfig(
        members=tuple(MemberConfig(name=m, opening_contribution_usd=OPENING_USD) for m in MEMBERS)
    )


def cents(rng: random.Random, low: int, high: int) -> Decimal:
    return D(rng.randint(low * 100, high * 100)) / 100


async def timed(tally: Tally, kind: str, command: Awaitable[Any]) -> Any:
    started = time.perf_counter()
    result = await command
    tally.latencies[kind].append(time.perf_counter() - started)
    return result


async def one_round(
    svc: PoolService, tally: Tally, rng: random.Random, tag: str, n: int, clock: SystemClock
) -> None:
    """contribute, allocate, position opened, trade closed, withdraw."""
    member = MEMBERS[rng.randrange(len(MEMBERS))]
    await timed(tally, "contribute", svc.contribute(member, cents(rng, 100, 500), f"c-{tag}-{n}"))
    tally.contributions += 1

    side = "long" if n % 2 else "short"
    request = AllocationRequest(
        strategy="bench",
        exchange="binance",
        market="spot",
        symbol="BTC/USDT",
        side=side,
        stop_loss_pct=STOP_LOSS_PCT,
    )
    granted = await timed(tally, "allocate", svc.allocate(request))
    if isinstance(granted, AllocationGranted):
        tally.granted += 1
        entry_price = D(20_000) + cents(rng, -500, 500)
        quantity = (granted.amount_usd * D("0.98") / entry_price).quantize(SATOSHI, ROUND_DOWN)
        entry_fee = (quantity * entry_price * D("0.001")).quantize(SATOSHI)
        common = {
            "trade_id": f"t-{tag}-{n}",
            "allocation_id": granted.allocation_id,
            "strategy": "bench",
            "exchange": "binance",
            "market": "spot",
            "symbol": "BTC/USDT",
            "side": side,
            "quantity": quantity,
            "entry_price": entry_price,
        }
        opened_ts = clock.now_ns()
        opened = PositionOpened(**common, entry_fee_usd=entry_fee, opened_ts_ns=opened_ts)
        await timed(tally, "position_opened", svc.on_position_opened(opened))
        tally.opened += 1
        exit_price = (entry_price * (1 + D(rng.randint(-200, 200)) / 10_000)).quantize(CENT)
        fees = entry_fee + (quantity * exit_price * D("0.001")).quantize(SATOSHI)
        move = exit_price - entry_price
        gross = (move if side == "long" else -move) * quantity
        closed = TradeClosed(
            **common,
            exit_price=exit_price,
            fees_usd=fees,
            realized_pnl_usd=gross - fees,
            opened_ts_ns=opened_ts,
            closed_ts_ns=max(opened_ts, clock.now_ns()),
            exit_reason="signal",
        )
        await timed(tally, "trade_closed", svc.on_trade_closed(closed))
        tally.closed += 1
    else:
        tally.refused += 1

    paid = await timed(tally, "withdraw", svc.withdraw(member, cents(rng, 50, 250), f"w-{tag}-{n}"))
    if isinstance(paid, WithdrawalQueued):
        tally.queued += 1
    elif isinstance(paid, WithdrawalRecorded):
        tally.withdrawals += 1


async def client(
    svc: PoolService, tally: Tally, seed: int, tag: str, deadline: float, clock: SystemClock
) -> None:
    """Rounds until ``deadline``; a command that raises is counted as failed (its round
    stops there) and the client goes on."""
    rng = random.Random(seed)
    n = 0
    while time.perf_counter() < deadline:
        try:
            await one_round(svc, tally, rng, tag, n, clock)
        except Exception as exc:  # counted, reported, and fails the run at the end
            tally.failed[type(exc).__name__] += 1
        n += 1


async def run_phase(
    services: list[PoolService], clients: int, seconds: float, tag: str, clock: SystemClock
) -> tuple[Tally, float]:
    tally = Tally()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(
            client(services[k % len(services)], tally, k + 1, f"{tag}{k}", deadline, clock)
            for k in range(clients)
        )
    )
    return tally, time.perf_counter() - started


def count_reloads(svc: PoolService, counts: Counter[str]) -> None:
    """Count this service's ledger reloads (each re-reads the whole journal); the group
    commit reloads through ``_reload`` (under the write lock), ``reload`` calls it too."""
    original = svc._reload

    async def reload() -> None:
        counts["reloads"] += 1
        await original()

    svc._reload = reload  # type: ignore[method-assign]


async def check_consistency(
    dsn: str, services: list[PoolService], store: Store, expected: dict[str, int]
) -> dict[str, Any]:
    """SQL checks of the journal and the rows against what the clients counted."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        n, lo, hi = await conn.fetchrow(
            "SELECT count(*), coalesce(min(seq), 0), coalesce(max(seq), 0) FROM journal_entries"
        )
        unbalanced = await conn.fetchval(
            "SELECT count(*) FROM (SELECT entry_seq FROM journal_lines GROUP BY entry_seq "
            "HAVING sum(amount_usd) <> 0) AS x"
        )
        lineless = await conn.fetchval(
            "SELECT count(*) FROM journal_entries e WHERE NOT EXISTS "
            "(SELECT 1 FROM journal_lines l WHERE l.entry_seq = e.seq)"
        )
        total = await conn.fetchval("SELECT coalesce(sum(amount_usd), 0) FROM journal_lines")
        balance = "SELECT coalesce(sum(amount_usd), 0) FROM journal_lines WHERE account = $1"
        cash = await conn.fetchval(balance, CASH)
        allocated = await conn.fetchval(balance, ALLOCATED)
        min_state_cash = await conn.fetchval("SELECT min(cash_usd) FROM pool_state")
        last_state_cash = await conn.fetchval(
            "SELECT cash_usd FROM pool_state ORDER BY seq DESC LIMIT 1"
        )
        states = await conn.fetchval("SELECT count(*) FROM pool_state")
        contributions = await conn.fetchval("SELECT count(*) FROM contributions")
        withdrawals = await conn.fetchval("SELECT count(*) FROM withdrawals")
        queued = await conn.fetchval("SELECT count(*) FROM withdrawal_queue")
        by_status = dict(
            await conn.fetch("SELECT status, count(*) FROM allocations GROUP BY status")
        )
        filled = await conn.fetchval("SELECT count(*) FROM allocations WHERE trade_id IS NOT NULL")
    finally:
        await conn.close()
    fresh = await repo.load_ledger(store, services[0].rules)
    newest = [s for s in services if s.ledger.seq == fresh.seq]
    found = {
        "journal_entries": n,
        "seq_gapless": n == hi and (lo == 1 or n == 0),
        "unbalanced_entries": unbalanced,
        "entries_without_lines": lineless,
        "lines_sum_usd": format(total.normalize(), "f"),  # exact: must be 0
        "cash_usd": str(cash.quantize(CENT)),
        "min_pool_state_cash_usd": None
        if min_state_cash is None
        else str(min_state_cash.quantize(CENT)),
        "allocated_usd": str(allocated.quantize(CENT)),
        "contributions": contributions,
        "withdrawals": withdrawals,
        "withdrawal_queue": queued,
        "allocations": {k: int(v) for k, v in by_status.items()},
    }
    want_entries = (
        expected["contributions"]
        + expected["withdrawals"]
        + expected["granted"]
        + expected["closed"]
    )
    problems = []
    if not found["seq_gapless"]:
        problems.append(f"seq not gapless: {n} entries, seq {lo}..{hi}")
    if unbalanced or lineless:
        problems.append(f"{unbalanced} unbalanced entries, {lineless} without lines")
    if total != 0:
        problems.append(f"journal lines sum to {total}, not 0")
    if cash < 0 or (min_state_cash is not None and min_state_cash < 0):
        problems.append(f"cash went negative (now {cash}, lowest pool_state {min_state_cash})")
    if states != n or last_state_cash != cash:
        problems.append(f"pool_state: {states} rows for {n} entries, last cash {last_state_cash}")
    if n != want_entries:
        problems.append(f"{n} journal entries, the clients counted {want_entries}")
    if contributions != expected["contributions"] or withdrawals != expected["withdrawals"]:
        problems.append(
            f"{contributions} contributions / {withdrawals} withdrawals stored, counted "
            f"{expected['contributions']} / {expected['withdrawals']}"
        )
    if queued != expected["queued"]:
        problems.append(f"{queued} queued withdrawals stored, counted {expected['queued']}")
    released, still_open = by_status.get("released", 0), by_status.get("open", 0)
    if released != expected["closed"] or still_open != expected["granted"] - expected["closed"]:
        problems.append(f"allocations {dict(by_status)}, counted {expected}")
    if filled != expected["opened"]:
        problems.append(f"{filled} allocations with a position, counted {expected['opened']}")
    if allocated != sum(a.amount_usd for a in fresh.allocations.values()):
        problems.append(f"allocated balance {allocated} is not the open allocations' sum")
    if not newest:
        problems.append("no service's memory is at the stored journal's last seq")
    for svc in newest:  # memory never drifted from the journal
        if svc.ledger.balances != fresh.balances or svc.ledger.member_units != fresh.member_units:
            problems.append("a service's in-memory ledger differs from a fresh load")
    found["problems"] = problems
    found["ok"] = not problems
    return found


def summarize(tally: Tally, elapsed: float) -> dict[str, Any]:
    """Per command kind, and over all commands (``all``): count, rate, latency."""
    per_kind = {}
    for kind in (*KINDS, "all"):
        if kind == "all":
            values = sorted(x for v in tally.latencies.values() for x in v)
        else:
            values = sorted(tally.latencies.get(kind, []))
        per_kind[kind] = {
            "count": len(values),
            "per_s": len(values) / elapsed,
            "p50_ms": percentile(values, 0.50) * 1000,
            "p99_ms": percentile(values, 0.99) * 1000,
            "mean_ms": (sum(values) / len(values) * 1000) if values else math.nan,
        }
    return per_kind


async def ledger_variant(
    args: argparse.Namespace, name: str, db: DbCounters, events: EventCounter
) -> dict[str, Any]:
    label, clients, n_services = VARIANTS[name]
    clients = clients or args.clients
    n_services = n_services or args.clients
    clock = SystemClock()
    async with scratch_database(args.pg, "ledger") as dsn:
        settings = await server_settings(dsn)
        require_durable(settings, "ledger database")
        url = re.sub(r"^postgres(ql)?://", "postgresql+asyncpg://", dsn)
        stores = [Store(url, name="capital_pool") for _ in range(n_services)]
        reloads: Counter[str] = Counter()
        try:
            await upgrade(stores[0], CapitalPoolPlugin.migrations)
            for store in stores:  # the sessions the ledger writes with
                session = await store.read(
                    lambda conn: {
                        k: str(conn.exec_driver_sql(f"SHOW {k}").scalar_one()) for k in DURABLE
                    }
                )
                require_durable(session, "a CoreC store session")
            services = []
            for i, store in enumerate(stores):
                svc = PoolService(store, pool_config(), clock)
                await svc.open()
                if i == 0:  # the others load the members and openings from the store
                    await svc.register_members()  # 8 opening contributions
                services.append(svc)
            warm, _ = await run_phase(services, clients, args.warmup, f"{name}-warm-", clock)
            for svc in services:
                count_reloads(svc, reloads)
            db.reset()
            events.counts.clear()
            profiler = cProfile.Profile() if args.profile and name == args.profile_variant else None
            if profiler is not None:
                profiler.enable()
            cpu_before = time.process_time()
            tally, elapsed = await run_phase(services, clients, args.ledger_seconds, name, clock)
            cpu_s = time.process_time() - cpu_before
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(args.profile)
            db_counts = dict(db.counts)
            retries = events.counts["ledger_conflict_retry"]
            expected = {
                key: getattr(warm, key) + getattr(tally, key)
                for key in ("contributions", "withdrawals", "granted", "opened", "closed", "queued")
            }
            expected["contributions"] += len(MEMBERS)  # the opening contributions
            consistency = await check_consistency(dsn, services, stores[0], expected)
        finally:
            for store in stores:
                await store.dispose()
    commands = tally.commands
    journal_commands = commands - len(tally.latencies.get("position_opened", []))
    per_command = {k: v / commands for k, v in db_counts.items()} if commands else {}
    # a transaction: BEGIN, its statements (an executemany is pipelined: one), COMMIT
    trips = sum(db_counts.get(k, 0) for k in ("begin", "statements", "commit", "rollback"))
    return {
        "variant": name,
        "label": label.format(n=args.clients),
        "clients": clients,
        "services": n_services,
        "seconds": elapsed,
        "client_cpu_s": cpu_s,
        "warmup_commands": warm.commands,
        "commands": commands,
        "commands_per_s": commands / elapsed,
        "journal_commands_per_s": journal_commands / elapsed,
        "per_kind": summarize(tally, elapsed),
        "refused": tally.refused,
        "queued": tally.queued,
        "gave_up": tally.failed["ConcurrencyConflict"],  # ConcurrencyConflict after every try
        "warmup_gave_up": warm.failed["ConcurrencyConflict"],
        "failed": {  # anything else: voids the run
            k: v for k, v in (tally.failed + warm.failed).items() if k != "ConcurrencyConflict"
        },
        "conflict_retries": retries,
        "reloads": reloads["reloads"],
        "db": {**db_counts, "round_trips_est": trips},
        "db_per_command": {**per_command, "round_trips_est": trips / commands if commands else 0},
        "consistency": consistency,
    }


# -- report ----------------------------------------------------------------------------------
def fmt_ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def print_report(results: dict[str, Any]) -> None:
    m, s = results["machine"], results["postgres"]
    runs = results["pgbench"]["runs"]
    ref = runs["ref"]["tps"] if "ref" in runs else math.nan
    print("CoreC pool ledger on PostgreSQL (durable commits) beside pgbench TPC-B")
    print(
        f"PostgreSQL {s['server_version']} · synchronous_commit={s['synchronous_commit']} · "
        f"fsync={s['fsync']} · wal_sync_method={s['wal_sync_method']} · "
        f"commit_delay={s['commit_delay']}"
    )
    print(f"Python {m['python']} · CPU {m['cpu']} · {m['cores']} cores")
    print(
        f"pgbench {results['pgbench_seconds']} s per run; CoreC {results['ledger_seconds']:g} s "
        f"per variant after {results['warmup_seconds']:g} s of warm-up, a new database each\n"
    )
    header = (
        f"{'run':<46} {'tps | cmd/s':>11} {'p50 ms':>7} {'p99 ms':>7} {'vs pgbench':>10} "
        f"{'target':>6}"
    )
    print(header)
    print("-" * len(header))
    for key, run in runs.items():
        plural = "s" if run["clients"] > 1 else ""
        name = f"pgbench TPC-B, {run['clients']} client{plural} (-c {run['clients']} -j {run['threads']})"
        print(
            f"{name:<46} {run['tps']:>11,.0f} {fmt_ms(run['p50_ms']):>7} "
            f"{fmt_ms(run['p99_ms']):>7} {run['tps'] / ref:>9.2f}x {'ref' if key == 'ref' else '':>6}"
        )
    for r in results["ledger"]:
        every = r["per_kind"]["all"]
        ratio = "-" if math.isnan(r["ratio"]) else f"{r['ratio']:.2f}x"
        verdict = "-" if math.isnan(r["ratio"]) else ("PASS" if r["passed"] else "FAIL")
        print(
            f"{'CoreC, ' + r['label']:<46} {r['commands_per_s']:>11,.0f} "
            f"{fmt_ms(every['p50_ms']):>7} {fmt_ms(every['p99_ms']):>7} {ratio:>10} {verdict:>6}"
        )
    for r in results["ledger"]:
        gave_up = r["gave_up"]
        print(
            f"\n{r['label']}: {r['commands']:,} commands in {r['seconds']:.1f} s "
            f"({r['journal_commands_per_s']:,.0f} journal entries/s), client CPU "
            f"{r['client_cpu_s'] / r['seconds'] * 100:.0f} % of a core "
            f"({r['client_cpu_s'] / max(r['commands'], 1) * 1000:.2f} ms a command)"
        )
        print(
            f"  refused {r['refused']}, queued {r['queued']}, conflict retries "
            f"{r['conflict_retries']}, ledger reloads {r['reloads']}, gave up after "
            f"{WRITE_ATTEMPTS} tries {gave_up}, other failures {sum(r['failed'].values())}"
        )
        print(
            f"  {'command':<16} {'count':>7} {'per s':>7} {'p50 ms':>7} {'p99 ms':>7} {'mean':>7}"
        )
        for kind, k in r["per_kind"].items():
            print(
                f"  {kind:<16} {k['count']:>7,} {k['per_s']:>7,.0f} {fmt_ms(k['p50_ms']):>7} "
                f"{fmt_ms(k['p99_ms']):>7} {fmt_ms(k['mean_ms']):>7}"
            )
        d = r["db_per_command"]
        print(
            f"  per command: {d.get('begin', 0):.2f} transactions ({d.get('commit', 0):.2f} "
            f"commits, {d.get('rollback', 0):.2f} rollbacks), {d.get('statements', 0):.2f} "
            f"statements, {d.get('checkouts', 0):.2f} pool checkouts (not pinged); about "
            f"{d['round_trips_est']:.1f} round trips"
        )
        c = r["consistency"]
        print(
            f"  consistent: {'yes' if c['ok'] else 'NO ' + '; '.join(c['problems'])} "
            f"({c['journal_entries']:,} entries, seq gapless, lines sum to {c['lines_sum_usd']}, "
            f"cash {c['cash_usd']} USD, lowest stored cash {c['min_pool_state_cash_usd']} USD)"
        )
    if math.isnan(ref):
        return
    best = max(results["ledger"], key=lambda r: r["commands_per_s"])
    verdict = "met" if best["passed"] else "NOT met"
    print(
        f"\ntarget: at least {TARGET_RATIO} x pgbench's {ref:,.0f} tps = "
        f"{TARGET_RATIO * ref:,.0f} commands/s: {verdict} (best: {best['label']}, "
        f"{best['commands_per_s']:,.0f} commands/s = {best['ratio']:.2f}x)"
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if not args.skip_pgbench and shutil.which(args.pgbench) is None:
        raise SystemExit(f"{args.pgbench} not found (Debian: apt-get install postgresql-client)")
    try:
        settings = await server_settings(args.pg)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise SystemExit(f"PostgreSQL is not reachable at {args.pg}: {exc}") from exc
    require_durable(settings, "server")
    pgbench = {"settings": settings, "runs": {}}
    if not args.skip_pgbench:
        pgbench = await pgbench_suite(args)
    db = DbCounters()
    events = EventCounter()
    logging.getLogger("corec.capital_pool").addHandler(events)
    ledger = []
    with tempfile.TemporaryDirectory(prefix="corec-bench-ledger-") as tmp:
        # as a node logs: INFO as JSON lines to its file, warnings to stderr
        configure_logging(level="INFO", console_level="WARNING", file=Path(tmp) / "corec.log")
        try:
            for name in args.variants.split(","):
                ledger.append(await ledger_variant(args, name, db, events))
        finally:
            close_logging()
    ref = pgbench["runs"]["ref"]["tps"] if pgbench["runs"] else math.nan
    for r in ledger:
        r["ratio"] = r["commands_per_s"] / ref
        r["passed"] = r["commands_per_s"] >= TARGET_RATIO * ref and not r["gave_up"]
    return {
        "machine": {
            "python": platform.python_version(),
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
        },
        "postgres": settings,
        "target_ratio": TARGET_RATIO,
        "pgbench_seconds": args.seconds,
        "ledger_seconds": args.ledger_seconds,
        "warmup_seconds": args.warmup,
        "pgbench": pgbench,
        "ledger": ledger,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg", default=DEFAULT_PG, help="admin DSN (creates scratch databases)")
    parser.add_argument("--pgbench", default="pgbench", help="the pgbench executable")
    parser.add_argument("--seconds", type=int, default=20, help="pgbench -T (per run)")
    parser.add_argument(
        "--ledger-seconds", type=float, default=15.0, help="measured time per CoreC variant"
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="CoreC warm-up seconds")
    parser.add_argument("--clients", type=int, default=4, help="pgbench -c, CoreC clients")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--skip-pgbench-1", action="store_true", help="no 1-client pgbench run")
    parser.add_argument(
        "--skip-pgbench", action="store_true", help="CoreC only (no ratio, no verdict)"
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile one variant into FILE")
    parser.add_argument("--profile-variant", default="single", help="the variant to profile")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")

    results = asyncio.run(run(args))
    broken = [r for r in results["ledger"] if not r["consistency"]["ok"] or r["failed"]]
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        print_report(results)
    if args.profile:
        stats = pstats.Stats(args.profile, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(25)
    if broken:
        for r in broken:
            print(
                f"{r['label']}: failed commands {r['failed']}, consistency problems "
                f"{r['consistency']['problems']}",
                file=sys.stderr,
            )
        raise SystemExit("the ledger is not consistent or commands failed: figures are void")


if __name__ == "__main__":
    main()
