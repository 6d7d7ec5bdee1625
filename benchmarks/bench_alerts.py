"""The alert manager: alerts classified, deduplicated and stored per second, and the time
from an alert on the bus to its arrival at a loopback HTTP receiver.

Issue 5: "Alerts classified, deduplicated and stored per second (target: 10,000/s on this
machine); time from an event on the bus to its arrival at a loopback receiver (p50, p99)."

1. **Throughput.** A real :class:`~corec.core.nucleus.Node` (memory bus, system clock)
   with only ``alert_manager``, built from a YAML config the way ``corec run`` builds it,
   running (``node.run``: the plugin's timer ticks and writes alert rows behind). N alerts
   (default 100,000) are published on ``alerts``: names x labels give 1,000 fingerprints,
   so most are duplicates; about 1 % are resolutions (of a random fingerprint: those that
   fire end, the others are ignored), so some fingerprints fire again as new firings.
   Every 50th alert is also a ``TradeClosed`` on ``trading_results`` that the shipped
   ``trade_loss`` / ``trade_gain`` rules may turn into an alert (3 trades in 5 do). The
   clock runs from the first publish until the node has stopped: every alert processed
   *and* the write-behind rows committed (the plugin's last flush is inside the stop).
   Then, in SQL on the database: rows in ``alerts`` == new firings, ``sum(occurrences)``
   == firing alerts received, rows ``resolved`` == resolutions that ended a firing, rule
   rows == rule alerts; and the plugin's ``received`` counter == alerts + rule alerts. Any
   difference makes the script exit non-zero. Variants: SQLite (a temporary directory)
   and PostgreSQL (a scratch database, created and dropped here), each with the log as
   ``corec run`` writes it (JSON lines to a file at INFO) and without (level CRITICAL).
   The route is ``log`` grouped by ``alertname`` with ``group_wait`` 1 s and
   ``group_interval`` 5 s, so notifications are rendered and stored during the run.
2. **Latency.** A receiver ``bench`` whose Apprise URL (``json://127.0.0.1:PORT/alerts``)
   comes from an environment variable set here; an aiohttp server on that port, in its
   own thread and event loop, notes when each post arrives. Route: ``group_by: [...]``
   (every alert its own group), ``group_wait_s: 0``. M alerts (default 500), each a new
   fingerprint, 20 ms apart, each carrying ``time.perf_counter_ns()`` taken just before
   its publish in its message; arrival - publish per alert. Every one must arrive, or the
   script exits non-zero.

Prints tables (``--json``: machine-readable). ``COREC_BENCH_PG`` (or ``--pg``) is the admin
DSN for the scratch databases, default ``postgresql://postgres@127.0.0.1:5432/postgres``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import math
import os
import platform
import pstats
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from aiohttp import web
from bench_common import cpu_model, scratch_database

import corec.messages  # noqa: F401 - registers every payload type
from corec.core import channels
from corec.core.config import CorecConfig, load_config
from corec.core.events import Payload, make_event
from corec.core.logging import close_logging, configure_logging
from corec.core.notices import Alert, Severity
from corec.core.nucleus import Node
from corec.core.registry import discover_plugins
from corec.messages.trading_results import TradeClosed

D = Decimal
TARGET_PER_S = 10_000
DEFAULT_PG = os.environ.get("COREC_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SOURCE = "bench@bench"
URLS_ENV = "COREC_BENCH_ALERTS_URLS"
NAMES: tuple[tuple[str, Severity], ...] = (
    ("price_move", "medium"),
    ("stale_data", "medium"),
    ("cross_exchange_gap", "low"),
    ("futures_basis", "low"),
    ("exchange_api_error", "high"),
    ("exchange_stream_failing", "high"),
    ("orphan_position", "high"),
    ("spread_wide", "low"),
    ("volume_spike", "low"),
    ("funding_extreme", "medium"),
)
EXCHANGES = ("binance", "kraken", "coinbase", "okx", "bybit")
SYMBOLS = tuple(
    f"{base}/USDT"
    for base in (
        "BTC ETH SOL XRP ADA DOGE DOT LTC LINK AVAX ATOM XLM ETC FIL TRX NEAR APT ARB OP SUI"
    ).split()
)
# realized PnL of the benchmark's trades, in turn: trade_loss fires at <= -50 USD
# (low; medium at -200), trade_gain at >= 500 USD; -10 and +120 raise nothing
TRADE_PNLS = (D(-300), D(-80), D(-10), D(120), D(650))
VARIANTS = {  # name: (store, log file at INFO)
    "sqlite": ("sqlite", True),
    "sqlite-nolog": ("sqlite", False),
    "postgres": ("postgres", True),
    "postgres-nolog": ("postgres", False),
}
SEQ_RE = re.compile(r"bench-seq=(\d+) t=(\d+)")
LATENCY_PATH = (
    "bus publish -> plugin receive (engine: fingerprint, new firing, group; row queued "
    "for write-behind; log line; AlertRecorded published) -> group due at once "
    "(group_wait 0): engine flush -> outbox row written in a transaction -> receiver "
    "worker woken -> due entries read -> render -> Apprise async_notify (its json:// "
    "plugin runs requests in Apprise's thread pool) -> HTTP POST over loopback -> "
    "aiohttp handler (another thread and event loop) notes the arrival"
)


# -- machine and PostgreSQL ----------------------------------------------------------------


async def pg_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


@asynccontextmanager
async def database(kind: str, admin_dsn: str, label: str) -> AsyncIterator[str | None]:
    """``None`` (the default SQLite file under data_dir) or a scratch PostgreSQL DSN."""
    if kind == "sqlite":
        yield None
        return
    async with scratch_database(admin_dsn, label) as dsn:
        yield dsn


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (``q`` in 0..1); NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


# -- the node ----------------------------------------------------------------------------
def node_config(workdir: Path, section: dict[str, Any], dsn: str | None) -> CorecConfig:
    """Write a config with only alert_manager and load it as ``corec run`` does (no
    environment overrides)."""
    if dsn is not None:
        section = {
            **section,
            "database_url": re.sub(r"^postgres(ql)?://", "postgresql+asyncpg://", dsn),
        }
    data = {
        "node": {
            "instance_id": "bench",
            "data_dir": str(workdir / "var"),
            "clock": "system",
            "plugins": ["alert_manager"],
        },
        "alert_manager": section,
    }
    path = workdir / "bench.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    models = {name: cls.Config for name, cls in discover_plugins().items()}
    return load_config(path, models, env={})


def logging_for(workdir: Path, with_log: bool) -> Path | None:
    """As ``corec run`` logs: JSON lines at INFO to a file; stderr only at CRITICAL here
    (``corec run`` prints WARNING and up, which would be thousands of terminal lines).
    Without the log: nothing below CRITICAL anywhere."""
    if with_log:
        file = workdir / "corec.log"
        configure_logging(level="INFO", console_level="CRITICAL", file=file)
        return file
    configure_logging(level="CRITICAL", console_level="CRITICAL", file=None)
    return None


# -- throughput workload -----------------------------------------------------------------
@dataclass
class Expected:
    """What the alert manager must have stored after the stream (simulated here)."""

    alerts: int = 0  # published on `alerts`
    trades: int = 0  # TradeClosed published
    rule_alerts: int = 0  # alerts the shipped rules raise from them
    firing_received: int = 0  # firing alerts received (alerts channel + rules)
    resolutions_sent: int = 0
    new_firings: int = 0  # == rows in `alerts`
    resolved: int = 0  # resolutions that ended a firing
    ignored: int = 0  # resolutions of nothing firing

    @property
    def received(self) -> int:
        return self.alerts + self.rule_alerts


def trade(n: int, pnl: Decimal, now_ns: int) -> TradeClosed:
    entry = D(20_000)
    exit_price = entry + pnl  # one unit long, no fees: PnL = exit - entry
    return TradeClosed(
        trade_id=f"bench-{n}",
        allocation_id=f"alloc-{n}",
        strategy="sma",
        exchange="binance",
        market="spot",
        symbol="BTC/USDT",
        side="long",
        quantity=D(1),
        entry_price=entry,
        exit_price=exit_price,
        fees_usd=D(0),
        realized_pnl_usd=pnl,
        opened_ts_ns=now_ns - 60_000_000_000,
        closed_ts_ns=now_ns,
        exit_reason="signal",
    )


def build_stream(
    n: int, resolve_fraction: float, trade_every: int, seed: int
) -> tuple[list[tuple[str, Payload]], Expected]:
    """The (channel, payload) stream and the figures it must produce."""
    rng = random.Random(seed)
    fingerprints = [
        (name, severity, {"exchange": ex, "symbol": sym})
        for name, severity in NAMES
        for ex in EXCHANGES
        for sym in SYMBOLS
    ]
    alerts = {
        state: [
            Alert(
                name=name,
                message=f"{name} on {labels['exchange']} {labels['symbol']}"
                + (" is over" if state == "resolved" else ""),
                severity=severity,
                labels=labels,
                state=state,
            )
            for name, severity, labels in fingerprints
        ]
        for state in ("firing", "resolved")
    }
    now_ns = time.time_ns()
    stream: list[tuple[str, Payload]] = []
    exp = Expected()
    active: set[int] = set()
    for i in range(n):
        k = rng.randrange(len(fingerprints))
        if rng.random() < resolve_fraction:
            stream.append((channels.ALERTS, alerts["resolved"][k]))
            exp.resolutions_sent += 1
            if k in active:
                active.discard(k)
                exp.resolved += 1
            else:
                exp.ignored += 1
        else:
            stream.append((channels.ALERTS, alerts["firing"][k]))
            exp.firing_received += 1
            if k not in active:
                active.add(k)
                exp.new_firings += 1
        exp.alerts += 1
        if trade_every and (i + 1) % trade_every == 0:
            pnl = TRADE_PNLS[exp.trades % len(TRADE_PNLS)]
            stream.append((channels.TRADING_RESULTS, trade(exp.trades, pnl, now_ns)))
            exp.trades += 1
            if pnl <= -50 or pnl >= 500:  # trade_loss / trade_gain: a new fingerprint each
                exp.rule_alerts += 1
                exp.firing_received += 1
                exp.new_firings += 1
    return stream, exp


async def stored_figures(config: CorecConfig, dsn: str | None) -> dict[str, int]:
    """Counts from the ``alerts`` table, read with a plain driver after the node closed."""
    query = (
        "SELECT count(*), coalesce(sum(occurrences), 0), "
        "coalesce(sum(CASE WHEN state = 'resolved' THEN 1 ELSE 0 END), 0), "
        "coalesce(sum(CASE WHEN name IN ('trade_loss', 'trade_gain') THEN 1 ELSE 0 END), 0), "
        "count(DISTINCT fingerprint) FROM alerts"
    )
    if dsn is None:
        path = config.database_url("alert_manager").removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            row = conn.execute(query).fetchone()
    else:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            row = tuple(await conn.fetchrow(query))
        finally:
            await conn.close()
    keys = ("rows", "occurrences", "resolved", "rule_rows", "fingerprints")
    return {k: int(v) for k, v in zip(keys, row, strict=True)}


def check(exp: Expected, stored: dict[str, int], counters: dict[str, int]) -> list[str]:
    """Every difference between what was sent and what was stored/counted."""
    wanted = {
        "rows": exp.new_firings,
        "occurrences": exp.firing_received,
        "resolved": exp.resolved,
        "rule_rows": exp.rule_alerts,
    }
    problems = [
        f"{key}: stored {stored[key]:,}, expected {value:,}"
        for key, value in wanted.items()
        if stored[key] != value
    ]
    counted = {
        "received": exp.received,
        "recorded": exp.new_firings,
        "resolved": exp.resolved,
        "deduplicated": exp.firing_received - exp.new_firings,
    }
    problems += [
        f"plugin {key}: {counters.get(key)}, expected {value:,}"
        for key, value in counted.items()
        if counters.get(key) != value
    ]
    return problems


async def throughput_run(
    args: argparse.Namespace, variant: str, repeat: int, profile: cProfile.Profile | None
) -> dict[str, Any]:
    kind, with_log = VARIANTS[variant]
    stream, exp = build_stream(args.alerts, args.resolve_fraction, args.trade_every, args.seed)
    section = {
        "route": {
            "receiver": "log",
            "group_by": ["alertname"],
            "group_wait_s": args.group_wait,
            "group_interval_s": args.group_interval,
            "repeat_interval_s": 14400,
        }
    }
    with tempfile.TemporaryDirectory(prefix="corec-bench-alerts-") as tmp:
        workdir = Path(tmp)
        log_file = logging_for(workdir, with_log)
        try:
            async with database(kind, args.pg, "alerts") as dsn:
                config = node_config(workdir, section, dsn)
                node = Node(config, discover_plugins())
                await node.start()
                runner = asyncio.create_task(node.run(handle_signals=False))
                await asyncio.sleep(0)  # the plugin's timer starts
                plugin: Any = node.plugin("alert_manager")
                bus, clock = node.bus, node.clock
                stopped = False
                try:
                    if profile is not None:
                        profile.enable()
                    cpu0 = time.process_time()
                    t0 = time.perf_counter()
                    for i, (channel, payload) in enumerate(stream):
                        await bus.publish(make_event(channel, payload, source=SOURCE, clock=clock))
                        if i & 255 == 255:
                            await asyncio.sleep(0)  # as other publishers would: let tasks run
                    t_published = time.perf_counter()
                    pending_rows = len(plugin.writer)
                    node.request_shutdown("benchmark done")
                    await runner
                    counters = {
                        k: getattr(plugin, k)
                        for k in ("received", "recorded", "deduplicated", "resolved", "muted")
                    }
                    counters["notifications"] = plugin.notifications
                    counters["rows_written"] = plugin.writer.rows_written
                    await node.stop()  # the plugin's last tick and write-behind flush
                    stopped = True
                    t_end = time.perf_counter()
                    cpu_s = time.process_time() - cpu0
                    if profile is not None:
                        profile.disable()
                finally:
                    if not stopped:
                        runner.cancel()
                        await node.stop()
                    await node.close()
                stored = await stored_figures(config, dsn)
        finally:
            close_logging()
        log_lines = 0
        if log_file is not None and log_file.exists():
            with log_file.open("rb") as fh:
                log_lines = sum(1 for _ in fh)
    seconds = t_end - t0
    received = counters["received"]
    problems = check(exp, stored, counters)
    return {
        "variant": variant,
        "store": kind,
        "log": with_log,
        "repeat": repeat,
        "seconds": seconds,
        "publish_seconds": t_published - t0,
        "final_flush_seconds": t_end - t_published,
        "rows_pending_at_last_publish": pending_rows,
        "received": received,
        "per_s": received / seconds,
        "client_cpu_s": cpu_s,
        "cpu_us_per_alert": cpu_s / received * 1e6,
        "log_lines": log_lines,
        "counters": counters,
        "stored": stored,
        "expected": exp.__dict__ | {"received": exp.received},
        "problems": problems,
    }


async def throughput_suite(args: argparse.Namespace) -> list[dict[str, Any]]:
    out = []
    for variant in args.variants.split(","):
        if args.profile and variant == args.profile_variant:
            # an extra run under cProfile (several times slower): not among the figures
            profile = cProfile.Profile()
            await throughput_run(args, variant, -1, profile)
            profile.dump_stats(args.profile)
            if not args.json:
                print(f"  {variant}: profiled run written to {args.profile}", file=sys.stderr)
        runs = []
        for repeat in range(args.repeats):
            run = await throughput_run(args, variant, repeat, None)
            runs.append(run)
            if not args.json:
                verdict = "ok" if not run["problems"] else "FAIL " + "; ".join(run["problems"])
                print(
                    f"  {variant} run {repeat + 1}: {run['per_s']:,.0f} alerts/s "
                    f"({run['seconds']:.2f} s), checks {verdict}",
                    file=sys.stderr,
                )
        best = max(runs, key=lambda r: r["per_s"])
        out.append(
            {
                "variant": variant,
                "best": best,
                "median_per_s": statistics.median(r["per_s"] for r in runs),
                "runs": runs,
                "problems": [p for r in runs for p in r["problems"]],
            }
        )
    return out


# -- latency -----------------------------------------------------------------------------
class LoopbackReceiver:
    """An aiohttp server on 127.0.0.1 (own thread and event loop) that notes, for every
    POST, ``perf_counter_ns()`` on arrival and the ``bench-seq``/``t`` pairs in its body."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[int, int, int]] = []  # (seq, published ns, arrived ns)
        self.posts = 0
        self.port = 0
        self._seen: set[int] = set()
        self._want = 0
        self._all_in: asyncio.Event | None = None
        self._caller: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="loopback-receiver", daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        arrived = time.perf_counter_ns()
        body = await request.text()
        self.posts += 1
        for seq, published in SEQ_RE.findall(body):
            self.arrivals.append((int(seq), int(published), arrived))
            self._seen.add(int(seq))
        if self._all_in is not None and self._caller is not None and len(self._seen) >= self._want:
            self._caller.call_soon_threadsafe(self._all_in.set)
        return web.json_response({"ok": True})

    def expect(self, count: int) -> asyncio.Event:
        """An event of the caller's loop, set once ``count`` distinct alerts arrived."""
        self._want = count
        self._caller = asyncio.get_running_loop()
        self._all_in = asyncio.Event()
        return self._all_in

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def __enter__(self) -> LoopbackReceiver:
        self._thread.start()
        if not self._ready.wait(10):
            raise SystemExit("the loopback receiver did not start")
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


async def latency_run(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    section = {
        "route": {
            "receiver": "bench",
            "group_by": ["..."],
            "group_wait_s": 0,
            "group_interval_s": args.group_interval,
            "repeat_interval_s": 14400,
        },
        "receivers": [{"name": "bench", "urls_env": URLS_ENV, "send_resolved": False}],
    }
    with (
        LoopbackReceiver() as server,
        tempfile.TemporaryDirectory(prefix="corec-bench-alat-") as tmp,
    ):
        workdir = Path(tmp)
        os.environ[URLS_ENV] = f"json://127.0.0.1:{server.port}/alerts"
        logging_for(workdir, True)
        try:
            async with database(kind, args.pg, "alat") as dsn:
                config = node_config(workdir, section, dsn)
                node = Node(config, discover_plugins())
                await node.start()
                runner = asyncio.create_task(node.run(handle_signals=False))
                plugin: Any = node.plugin("alert_manager")
                try:
                    await asyncio.sleep(0.2)  # the timer and the receiver's worker are up
                    all_in = server.expect(args.latency_alerts)
                    gap_s = args.gap_ms / 1000
                    start = time.perf_counter()
                    for i in range(args.latency_alerts):
                        # keep to the schedule (a slow publish does not push the others)
                        delay = start + i * gap_s - time.perf_counter()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        published = time.perf_counter_ns()
                        alert = Alert(
                            name="bench_latency",
                            message=f"bench-seq={i} t={published}",
                            severity="medium",
                            labels={"seq": str(i)},
                        )
                        await node.bus.publish(
                            make_event(channels.ALERTS, alert, source=SOURCE, clock=node.clock)
                        )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(all_in.wait(), args.latency_wait)
                    outcomes = dict(plugin.outcomes)
                    notifications = plugin.notifications
                finally:
                    node.request_shutdown("benchmark done")
                    await runner
                    await node.stop()
                    await node.close()
        finally:
            close_logging()
            os.environ.pop(URLS_ENV, None)
    first: dict[int, float] = {}
    for seq, published, arrived in server.arrivals:
        ms = (arrived - published) / 1e6
        first[seq] = min(first.get(seq, ms), ms)
    latencies = sorted(first.values())
    arrived_n = len(first)
    return {
        "store": kind,
        "alerts": args.latency_alerts,
        "gap_ms": args.gap_ms,
        "arrived": arrived_n,
        "posts": server.posts,
        "duplicates": len(server.arrivals) - arrived_n,
        "notifications": notifications,
        "deliveries": outcomes,
        "p50_ms": percentile(latencies, 0.50),
        "p90_ms": percentile(latencies, 0.90),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else math.nan,
        "min_ms": latencies[0] if latencies else math.nan,
        "mean_ms": statistics.fmean(latencies) if latencies else math.nan,
        "ok": arrived_n == args.latency_alerts,
    }


# -- report ------------------------------------------------------------------------------
def print_report(results: dict[str, Any]) -> None:
    m = results["machine"]
    pg = f" · PostgreSQL {m['postgres']}" if m.get("postgres") else ""
    print(f"Python {m['python']} · CPU {m['cpu']} · {m['cores']} cores{pg}")
    rows = results["throughput"]
    if rows:
        exp = rows[0]["best"]["expected"]
        print(
            f"\nAlerts classified, deduplicated and stored: {exp['alerts']:,} alerts on `alerts` "
            f"+ {exp['trades']:,} TradeClosed ({exp['rule_alerts']:,} rule alerts), "
            f"best of {results['repeats']}"
        )
        print(
            f"{exp['new_firings']:,} firings ({exp['rule_alerts']:,} from rules), "
            f"{exp['firing_received'] - exp['new_firings']:,} duplicates, "
            f"{exp['resolved']:,} resolved, {exp['ignored']:,} resolutions of nothing firing\n"
        )
        header = (
            f"{'variant':<15} {'alerts/s':>9} {'median':>9} {'s':>6} {'publish/s':>10} "
            f"{'flush s':>7} {'CPU us/alert':>12} {'notes':>5} {'log lines':>9} {'checks':>6} "
            f"{'target':>6}"
        )
        print(header)
        print("-" * len(header))
        for row in rows:
            b = row["best"]
            verdict = "PASS" if b["per_s"] >= TARGET_PER_S else "miss"
            print(
                f"{row['variant']:<15} {b['per_s']:>9,.0f} {row['median_per_s']:>9,.0f} "
                f"{b['seconds']:>6.2f} {b['received'] / b['publish_seconds']:>10,.0f} "
                f"{b['final_flush_seconds']:>7.3f} {b['cpu_us_per_alert']:>12.1f} "
                f"{b['counters']['notifications']:>5} {b['log_lines']:>9,} "
                f"{'ok' if not row['problems'] else 'FAIL':>6} {verdict:>6}"
            )
        best = max(rows, key=lambda r: r["best"]["per_s"])
        worst = min(rows, key=lambda r: r["best"]["per_s"])
        print(
            f"\ntarget {TARGET_PER_S:,} alerts/s: "
            + (
                "met by every variant"
                if worst["best"]["per_s"] >= TARGET_PER_S
                else f"best {best['variant']} {best['best']['per_s']:,.0f}/s, "
                f"worst {worst['variant']} {worst['best']['per_s']:,.0f}/s"
            )
        )
    lat = results["latency"]
    if lat:
        r0 = lat[0]
        print(
            f"\nLatency: bus -> loopback HTTP receiver (Apprise json://), {r0['alerts']:,} alerts "
            f"{r0['gap_ms']:g} ms apart, each a new group (group_wait 0)"
        )
        header = (
            f"{'store':<9} {'arrived':>9} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
            f"{'max ms':>7} {'min ms':>7} {'dup':>4}"
        )
        print(header)
        print("-" * len(header))
        for r in lat:
            print(
                f"{r['store']:<9} {r['arrived']:>4}/{r['alerts']:<4} {r['p50_ms']:>7.2f} "
                f"{r['p90_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['max_ms']:>7.2f} "
                f"{r['min_ms']:>7.2f} {r['duplicates']:>4}"
            )
        print(f"path: {LATENCY_PATH}")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    machine: dict[str, Any] = {
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
    }
    kinds = {VARIANTS[v][0] for v in args.variants.split(",") if v} | set(
        k for k in args.latency_stores.split(",") if k
    )
    if "postgres" in kinds:
        try:
            machine["postgres"] = await pg_version(args.pg)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            raise SystemExit(f"PostgreSQL is not reachable at {args.pg}: {exc}") from exc
    throughput = await throughput_suite(args) if args.variants and args.alerts else []
    latency = []
    for kind in (k for k in args.latency_stores.split(",") if k):
        if args.latency_alerts:
            latency.append(await latency_run(args, kind))
    return {
        "machine": machine,
        "target_per_s": TARGET_PER_S,
        "repeats": args.repeats,
        "throughput": throughput,
        "latency": latency,
        "latency_path": LATENCY_PATH,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg", default=DEFAULT_PG, help="admin DSN (creates scratch databases)")
    parser.add_argument("--alerts", type=int, default=100_000, help="alerts per throughput run")
    parser.add_argument("--repeats", type=int, default=3, help="throughput runs per variant")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument(
        "--resolve-fraction", type=float, default=0.01, help="share of alerts that resolve"
    )
    parser.add_argument(
        "--trade-every", type=int, default=50, help="a TradeClosed after every Nth alert (0: none)"
    )
    parser.add_argument(
        "--group-wait", type=float, default=1.0, help="throughput route group_wait_s"
    )
    parser.add_argument(
        "--group-interval", type=float, default=5.0, help="group_interval_s (both parts)"
    )
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--latency-alerts", type=int, default=500, help="alerts (0: skip)")
    parser.add_argument("--gap-ms", type=float, default=20.0, help="between latency alerts")
    parser.add_argument(
        "--latency-stores", default="sqlite,postgres", help="comma-separated (empty: skip)"
    )
    parser.add_argument(
        "--latency-wait", type=float, default=15.0, help="seconds to wait for the last arrivals"
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile one throughput run into FILE")
    parser.add_argument("--profile-variant", default="sqlite", help="the variant to profile")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    unknown = {v for v in args.variants.split(",") if v} - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")
    bad = {k for k in args.latency_stores.split(",") if k} - {"sqlite", "postgres"}
    if bad:
        parser.error(f"unknown latency stores {sorted(bad)}; choose sqlite and/or postgres")

    results = asyncio.run(run(args))
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        print_report(results)
    if args.profile:
        stats = pstats.Stats(args.profile, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
    failed = [f"{r['variant']}: {p}" for r in results["throughput"] for p in r["problems"]]
    failed += [
        f"latency {r['store']}: {r['arrived']} of {r['alerts']} alerts arrived"
        for r in results["latency"]
        if not r["ok"]
    ]
    if failed:
        print("\n".join(failed), file=sys.stderr)
        raise SystemExit("alerts were lost or miscounted: figures are void")


if __name__ == "__main__":
    main()
