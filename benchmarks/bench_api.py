"""The API under load: HTTP requests per second and latency, and WebSocket fan-out.

Issue 6 sets no numeric target for the API; this script states the figures.

The node: a real :class:`~corec.core.nucleus.Node` (memory bus) built from a YAML config
the way ``corec run`` builds it, with ``api`` (port 0: any free port), ``user_management``,
``capital_pool``, ``exchange_sync`` (replaying the first 300 one-minute bars of the
shipped BTC perpetual recording, so ``/api/v1/prices`` has tickers) and ``market_monitor``;
SQLite files in a temporary directory, or (``--pg``) scratch PostgreSQL databases for
``user_management`` and ``capital_pool``, created and dropped here. Users ``root`` (admin)
and ``vic`` (viewer) with API tokens; 1,000 + 500 USD contributed by alice and bob through
the API. The load comes from a child process (this script with ``--worker``), so the load
generator never runs on the node's event loop; on a 2-core machine the two processes get a
core each.

1. **HTTP.** For each path (``/api/v1/pool``, ``/api/v1/prices``, and ``/health`` as the
   floor: no token, no bus request), C concurrent aiohttp clients (default 16, keep-alive,
   one connection each) send GET after GET for a warm-up second, then S seconds (default
   10). Printed: requests/s, p50/p90/p99/max latency in ms, errors (any status but 200, or
   a failed request), and the node's and the client's CPU over the window. The token is
   vic's API token (a viewer: what the dashboard of a read-only user sends). ``wrk``, if on
   the PATH, is run too (2 threads, C connections, S seconds) and its summary printed.
2. **WebSocket fan-out.** K clients (default 50) in the child process, each subscribed to
   ``prices``. The node publishes R ``market_data`` events per second (default 1,000) for
   T seconds (default 10) on its bus, paced against the clock (every due event goes out at
   each wake-up, so the rate holds on average). Each is a ``MarketSnapshot`` whose
   ``exchange_ts_ns`` is ``time.time_ns()`` just before its publish and whose prices carry
   its sequence number. Each client notes ``time.time_ns()`` when each message comes out
   of ``recv()`` (the same machine, the same clock) and checks that it got 1..R×T in order.
   Printed: events delivered per client (expected: all), clients dropped by the hub,
   latency publish → client p50/p90/p99/max in ms over every delivered message, and the
   node's CPU. Variants: clients offering ``permessage-deflate`` (what browsers do;
   uvicorn accepts it, so the server compresses each message once per client) and clients
   without compression.

Latencies are integer nanoseconds; figures are printed through ``Decimal``. Any HTTP error,
any lost, duplicated or reordered event, or a dropped client exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import msgspec
import yaml

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
RECORDING = ROOT / "src" / "corec" / "data" / "btc-perp_1m_2022-01.csv"
REPLAY_ROWS = 300
DEFAULT_PG = os.environ.get("COREC_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
STORED = ("user_management", "capital_pool")
PATHS = ("/api/v1/pool", "/api/v1/prices", "/health")
NS_PER_S = 1_000_000_000
NS_PER_MS = Decimal(1_000_000)
BENCH_EXCHANGE = "bench"  # no strategy and no plugin acts on this instrument


def ms(ns: int | None) -> str:
    """Integer nanoseconds as milliseconds, 2 decimals."""
    if ns is None:
        return "-"
    return str((Decimal(ns) / NS_PER_MS).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def per_s(count: int, elapsed_ns: int) -> Decimal:
    """``count`` per second over ``elapsed_ns``, to the unit."""
    if elapsed_ns <= 0:
        return Decimal(0)
    return (Decimal(count) * NS_PER_S / elapsed_ns).quantize(Decimal(1), rounding=ROUND_HALF_UP)


def pct(part_ns: int, whole_ns: int) -> Decimal:
    """``part / whole`` in percent, to the unit."""
    if whole_ns <= 0:
        return Decimal(0)
    return (Decimal(part_ns) * 100 / whole_ns).quantize(Decimal(1), rounding=ROUND_HALF_UP)


def percentile(sorted_ns: list[int], per_mille: int) -> int | None:
    """Nearest-rank percentile of an ascending list (``per_mille``: 500 is p50)."""
    n = len(sorted_ns)
    if n == 0:
        return None
    rank = max(1, -(-n * per_mille // 1000))
    return sorted_ns[min(rank, n) - 1]


def summary(latencies_ns: list[int]) -> dict[str, int | None]:
    values = sorted(latencies_ns)
    return {
        "p50_ns": percentile(values, 500),
        "p90_ns": percentile(values, 900),
        "p99_ns": percentile(values, 990),
        "max_ns": values[-1] if values else None,
        "min_ns": values[0] if values else None,
    }


def us_each(cpu_ns: int, count: int) -> str:
    """CPU microseconds per unit (request, message), 1 decimal."""
    if count <= 0:
        return "-"
    return str((Decimal(cpu_ns) / 1000 / count).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def fmt(value: Decimal) -> str:
    return f"{value:,}"


# -- the load generators (the child process) ----------------------------------------------


async def http_worker(args: argparse.Namespace) -> dict[str, Any]:
    """C clients sending GET ``args.path`` for a warm-up then ``args.seconds``."""
    import aiohttp

    headers = {"Authorization": f"Bearer {args.token}"}
    latencies: list[int] = []
    errors: dict[str, int] = {}
    url = args.url + args.path
    connector = aiohttp.TCPConnector(limit=args.clients, force_close=False)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        start = time.perf_counter_ns()
        measure_from = start + args.warmup * NS_PER_S
        end = measure_from + args.seconds * NS_PER_S
        last_done = measure_from
        cpu_at_start: list[int] = []

        async def client() -> None:
            nonlocal last_done
            while True:
                t0 = time.perf_counter_ns()
                if t0 >= end:
                    return
                if t0 >= measure_from and not cpu_at_start:
                    cpu_at_start.append(time.process_time_ns())
                error: str | None = None
                try:
                    async with session.get(url) as reply:
                        await reply.read()
                        if reply.status != 200:
                            error = f"HTTP {reply.status}"
                except (aiohttp.ClientError, OSError) as exc:
                    error = type(exc).__name__
                t1 = time.perf_counter_ns()
                if t0 >= measure_from:
                    latencies.append(t1 - t0)
                    last_done = max(last_done, t1)
                    if error is not None:
                        errors[error] = errors.get(error, 0) + 1

        await asyncio.gather(*(client() for _ in range(args.clients)))
        cpu_ns = time.process_time_ns() - (cpu_at_start[0] if cpu_at_start else 0)
    return {
        "path": args.path,
        "requests": len(latencies),
        "elapsed_ns": last_done - measure_from,
        "errors": errors,
        "client_cpu_ns": cpu_ns,
        **summary(latencies),
    }


class _Snap(msgspec.Struct):
    mid: str
    exchange_ts_ns: int


class _Message(msgspec.Struct):
    type: str
    payload: _Snap | None = None
    reason: str | None = None


async def ws_worker(args: argparse.Namespace) -> dict[str, Any]:
    """K clients subscribed to ``prices``: READY on stdout once all are subscribed, then
    each receives until it has ``args.expected`` events (or the time is up)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    decode = msgspec.json.Decoder(_Message).decode
    url = f"{args.url.replace('http://', 'ws://')}/ws?token={args.token}"
    compression = None if args.compression == "none" else "deflate"
    subscribed = 0
    all_subscribed = asyncio.Event()
    go = asyncio.Event()
    results: list[dict[str, Any]] = []
    latencies: list[int] = []

    async def client(index: int) -> None:
        nonlocal subscribed
        seqs: list[int] = []
        mine: list[int] = []
        dropped: str | None = None
        close_code: int | None = None
        async with connect(
            url, proxy=None, compression=compression, open_timeout=30, max_queue=256
        ) as conn:
            await conn.send('{"op": "subscribe", "channels": ["prices"]}')
            while decode(await conn.recv(decode=False)).type != "subscribed":
                pass
            subscribed += 1
            if subscribed == args.clients:
                all_subscribed.set()
            await go.wait()
            try:
                async with asyncio.timeout(args.timeout):
                    while len(seqs) < args.expected:
                        raw = await conn.recv(decode=False)
                        now = time.time_ns()
                        message = decode(raw)
                        if message.type == "event" and message.payload is not None:
                            seqs.append(int(message.payload.mid))
                            mine.append(now - message.payload.exchange_ts_ns)
                        elif message.type == "dropped":
                            dropped = message.reason
            except TimeoutError:
                pass
            except ConnectionClosed as exc:
                close_code = exc.rcvd.code if exc.rcvd else None
        latencies.extend(mine)
        results.append(
            {
                "client": index,
                "delivered": len(seqs),
                "in_order": seqs == list(range(1, len(seqs) + 1)),
                "dropped": dropped,
                "close_code": close_code,
            }
        )

    tasks = [asyncio.create_task(client(i)) for i in range(args.clients)]
    await asyncio.wait_for(all_subscribed.wait(), 60)
    cpu0 = time.process_time_ns()
    wall0 = time.perf_counter_ns()
    go.set()
    print("READY", flush=True)
    await asyncio.gather(*tasks)
    return {
        "clients": sorted(results, key=lambda r: r["client"]),
        "client_cpu_ns": time.process_time_ns() - cpu0,
        "client_wall_ns": time.perf_counter_ns() - wall0,
        "messages": len(latencies),
        **summary(latencies),
    }


def worker_main(args: argparse.Namespace) -> None:
    job = http_worker(args) if args.worker == "http" else ws_worker(args)
    print(json.dumps(asyncio.run(job)), flush=True)


# -- the node -----------------------------------------------------------------------------


@dataclass
class Running:
    node: Any
    base_url: str
    tokens: dict[str, str]


def node_config(workdir: Path, urls: dict[str, str]) -> Any:
    from corec.core.config import load_config
    from corec.core.registry import discover_plugins

    recording = workdir / "slice.csv"
    with RECORDING.open(encoding="utf-8") as src, recording.open("w", encoding="utf-8") as dst:
        for index, line in enumerate(src):
            if index > REPLAY_ROWS:
                break
            dst.write(line)
    data: dict[str, Any] = {
        "node": {
            "instance_id": "bench",
            "data_dir": str(workdir / "var"),
            "plugins": [
                "api",
                "user_management",
                "capital_pool",
                "exchange_sync",
                "market_monitor",
            ],
            "clock": "replay",
        },
        "api": {"port": 0, "dashboard": False},
        "exchange_sync": {
            "source": "replay",
            "replay": {
                "path": str(recording),
                "exchange": "ftx",
                "market": "futures",
                "symbol": "BTC/USD:USD",
                "volume_unit": "quote",
                "speed": "max",
                "stop_at_end": False,
            },
        },
    }
    for name, url in urls.items():
        data.setdefault(name, {})["database_url"] = url
    path = workdir / "bench.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    models = {name: cls.Config for name, cls in discover_plugins().items()}
    return load_config(path, models, env={})


@asynccontextmanager
async def databases(pg: str | None) -> AsyncIterator[dict[str, str]]:
    """``{}`` (SQLite files under data_dir), or a scratch PostgreSQL database per stored plugin."""
    if pg is None:
        yield {}
        return
    from bench_common import scratch_database

    async with contextlib.AsyncExitStack() as stack:
        urls = {}
        for name in STORED:
            dsn = await stack.enter_async_context(scratch_database(pg, "api"))
            urls[name] = re.sub(r"^postgres(ql)?://", "postgresql+asyncpg://", dsn)
        yield urls


@asynccontextmanager
async def running_node(workdir: Path, pg: str | None) -> AsyncIterator[Running]:
    import httpx

    from corec.core.nucleus import Node
    from corec.core.registry import discover_plugins

    async with databases(pg) as urls:
        node = Node(node_config(workdir, urls), discover_plugins())
        await node.start()
        runner: asyncio.Task[Any] | None = None
        try:
            users = node.plugin("user_management").service
            await users.add_user("root", "admin")
            await users.add_user("vic", "viewer")
            tokens = {n: (await users.create_api_token(n)).token for n in ("root", "vic")}
            base_url = f"http://127.0.0.1:{node.plugin('api').port}"
            async with httpx.AsyncClient(
                base_url=base_url, headers={"Authorization": f"Bearer {tokens['root']}"}
            ) as admin:
                for member, amount in (("alice", "1000"), ("bob", "500")):
                    reply = await admin.post(
                        "/api/v1/contributions", json={"member": member, "amount_usd": amount}
                    )
                    if reply.status_code != 201:
                        raise SystemExit(f"seeding the pool failed: {reply.text}")
            runner = asyncio.create_task(node.run(handle_signals=False))
            for _ in range(1200):
                if (
                    node.health()["plugins"]["exchange_sync"].get("bars_processed", 0)
                    >= REPLAY_ROWS
                ):
                    break
                await asyncio.sleep(0.05)
            else:
                raise SystemExit("the replay did not finish")
            await asyncio.sleep(0.5)
            yield Running(node=node, base_url=base_url, tokens=tokens)
        finally:
            node.request_shutdown("benchmark done")
            if runner is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(runner, 30)
            await node.stop()
            await node.close()


async def child(*argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), *argv, stdout=asyncio.subprocess.PIPE
    )


async def child_result(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdout is not None
    out = await proc.stdout.read()
    code = await proc.wait()
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if code != 0 or not lines:
        raise SystemExit(f"the load generator failed (exit {code}): {out.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


async def http_run(run: Running, args: argparse.Namespace, path: str) -> dict[str, Any]:
    proc = await child(
        "--worker", "http", "--url", run.base_url, "--token", run.tokens["vic"],
        "--path", path, "--clients", str(args.http_clients), "--seconds", str(args.seconds),
        "--warmup", str(args.warmup),
    )  # fmt: skip
    await asyncio.sleep(args.warmup)
    cpu0, wall0 = time.process_time_ns(), time.perf_counter_ns()
    result = await child_result(proc)
    result["node_cpu_ns"] = time.process_time_ns() - cpu0
    result["node_wall_ns"] = time.perf_counter_ns() - wall0
    return result


async def wrk_run(run: Running, args: argparse.Namespace, path: str) -> str | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    proc = await asyncio.create_subprocess_exec(
        wrk, "-t2", f"-c{args.http_clients}", f"-d{args.seconds}s", "--latency",
        "-H", f"Authorization: Bearer {run.tokens['vic']}", run.base_url + path,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return out.decode()


async def ws_run(run: Running, args: argparse.Namespace, compression: str) -> dict[str, Any]:
    from corec.core import channels
    from corec.core.events import make_event
    from corec.messages.market_data import MarketSnapshot

    node, bus, clock = run.node, run.node.bus, run.node.clock
    hub = node.plugin("api").hub
    total = args.ws_rate * args.ws_seconds
    dropped0, sent0 = hub.dropped_clients, hub.sent
    proc = await child(
        "--worker", "ws", "--url", run.base_url, "--token", run.tokens["vic"],
        "--clients", str(args.ws_clients), "--expected", str(total),
        "--timeout", str(args.ws_seconds + 30), "--compression", compression,
    )  # fmt: skip
    assert proc.stdout is not None
    ready = await asyncio.wait_for(proc.stdout.readline(), 90)
    if ready.strip() != b"READY":
        raise SystemExit(f"the WebSocket clients did not start: {ready!r}")
    interval_ns = NS_PER_S // args.ws_rate
    cpu0, t0 = time.process_time_ns(), time.perf_counter_ns()
    published = 0
    worst_behind_ns = 0
    while published < total:
        now = time.perf_counter_ns()
        due = min(total, (now - t0) // interval_ns + 1)
        if due > published:
            worst_behind_ns = max(worst_behind_ns, now - (t0 + (due - 1) * interval_ns))
        while published < due:
            published += 1
            price = Decimal(published)
            snap = MarketSnapshot(
                exchange=BENCH_EXCHANGE,
                market="spot",
                symbol="ZZZ/USD",
                bid=price,
                ask=price,
                last=price,
                mid=price,
                price=price,
                spread_bps=Decimal(0),
                return_pct=None,
                window_s=60,
                exchange_ts_ns=time.time_ns(),
            )
            await bus.publish(make_event(channels.MARKET_DATA, snap, source="bench", clock=clock))
        next_ns = t0 + published * interval_ns
        wait_ns = next_ns - time.perf_counter_ns()
        await asyncio.sleep(wait_ns / NS_PER_S if wait_ns > 0 else 0)
    publish_ns = time.perf_counter_ns() - t0
    result = await child_result(proc)
    result["node_cpu_ns"] = time.process_time_ns() - cpu0
    result["node_wall_ns"] = time.perf_counter_ns() - t0
    result["publish_ns"] = publish_ns
    result["published"] = published
    result["publisher_behind_ns"] = worst_behind_ns
    result["hub_dropped"] = hub.dropped_clients - dropped0
    result["hub_sent"] = hub.sent - sent0
    result["compression"] = compression
    return result


async def pg_version(dsn: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench_common import cpu_model

    from corec.core.logging import close_logging, configure_logging

    machine: dict[str, Any] = {
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "store": "postgres" if args.pg else "sqlite",
        "load_average_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    if args.pg:
        machine["postgres"] = await pg_version(args.pg)
    configure_logging(level="CRITICAL", console_level="CRITICAL", file=None)
    results: dict[str, Any] = {"machine": machine, "http": [], "wrk": {}, "ws": []}
    try:
        with tempfile.TemporaryDirectory(prefix="corec-bench-api-") as tmp:
            async with running_node(Path(tmp), args.pg) as node:
                for path in args.paths.split(","):
                    if path and args.seconds:
                        profile = cProfile.Profile() if args.profile else None
                        if profile is not None:
                            profile.enable()
                        results["http"].append(await http_run(node, args, path))
                        if profile is not None:
                            profile.disable()
                            profile.dump_stats(
                                f"{args.profile}.{path.strip('/').replace('/', '-')}"
                            )
                        out = await wrk_run(node, args, path)
                        if out is not None:
                            results["wrk"][path] = out
                for compression in args.ws_compression.split(","):
                    if compression and args.ws_clients:
                        profile = cProfile.Profile() if args.profile else None
                        if profile is not None:
                            profile.enable()
                        results["ws"].append(await ws_run(node, args, compression))
                        if profile is not None:
                            profile.disable()
                            profile.dump_stats(f"{args.profile}.{compression}")
    finally:
        close_logging()
    return results


def print_report(results: dict[str, Any], args: argparse.Namespace) -> None:
    m = results["machine"]
    store = f"PostgreSQL {m['postgres']}" if m["store"] == "postgres" else "SQLite"
    print(
        f"Python {m['python']} · CPU {m['cpu']} · {m['cores']} cores · {store} · "
        f"load average at start {m['load_average_at_start']}"
    )
    if results["http"]:
        print(
            f"\nHTTP: {args.http_clients} concurrent keep-alive clients (aiohttp, another "
            f"process), {args.seconds} s per path after {args.warmup} s warm-up, viewer token"
        )
        header = (
            f"{'path':<16} {'requests':>9} {'req/s':>7} {'p50 ms':>7} {'p90 ms':>7} "
            f"{'p99 ms':>7} {'max ms':>7} {'errors':>6} {'node CPU':>8} {'us/req':>6} {'client CPU':>10}"
        )
        print(header)
        print("-" * len(header))
        for r in results["http"]:
            errors = sum(r["errors"].values())
            print(
                f"{r['path']:<16} {r['requests']:>9,} {fmt(per_s(r['requests'], r['elapsed_ns'])):>7} "
                f"{ms(r['p50_ns']):>7} {ms(r['p90_ns']):>7} {ms(r['p99_ns']):>7} "
                f"{ms(r['max_ns']):>7} {errors:>6} {pct(r['node_cpu_ns'], r['node_wall_ns']):>7}% "
                f"{us_each(r['node_cpu_ns'], r['requests']):>6} "
                f"{pct(r['client_cpu_ns'], r['elapsed_ns']):>9}%"
            )
            if r["errors"]:
                print(f"  errors: {r['errors']}")
    if results["http"]:
        if results["wrk"]:
            for path, out in results["wrk"].items():
                print(f"\nwrk {path}:\n{out}")
        else:
            print("wrk: not installed (skipped)")
    for r in results["ws"]:
        delivered = [c["delivered"] for c in r["clients"]]
        expected = r["published"]
        complete = sum(1 for c in r["clients"] if c["delivered"] == expected and c["in_order"])
        print(
            f"\nWebSocket fan-out: {len(r['clients'])} clients on `prices` (another process), "
            f"{args.ws_rate:,} market_data events/s for {args.ws_seconds} s "
            f"({expected:,} published), client compression: {r['compression']}"
        )
        print(
            f"  delivered per client: min {min(delivered):,}, max {max(delivered):,} "
            f"(expected {expected:,}); complete and in order: {complete}/{len(r['clients'])}; "
            f"dropped by the hub: {r['hub_dropped']}"
        )
        print(
            f"  latency publish -> client recv(): p50 {ms(r['p50_ns'])} ms, p90 "
            f"{ms(r['p90_ns'])} ms, p99 {ms(r['p99_ns'])} ms, max {ms(r['max_ns'])} ms "
            f"(over {r['messages']:,} messages)"
        )
        print(
            f"  publishing took {ms(r['publish_ns'])} ms (worst lag behind schedule "
            f"{ms(r['publisher_behind_ns'])} ms); node CPU "
            f"{pct(r['node_cpu_ns'], r['node_wall_ns'])}% "
            f"({us_each(r['node_cpu_ns'], r['messages'])} us per message delivered), client CPU "
            f"{pct(r['client_cpu_ns'], r['client_wall_ns'])}%"
        )
        ok = complete == len(r["clients"]) and r["hub_dropped"] == 0
        rate = args.ws_rate * len(r["clients"])
        print(
            f"  {args.ws_rate:,} ev/s x {len(r['clients'])} clients = {rate:,} msgs/s "
            f"delivered: {'yes' if ok else 'no'}"
        )


def problems(results: dict[str, Any]) -> list[str]:
    found = [
        f"HTTP {r['path']}: {sum(r['errors'].values())} errors {r['errors']}"
        for r in results["http"]
        if r["errors"]
    ]
    for r in results["ws"]:
        bad = [c for c in r["clients"] if c["delivered"] != r["published"] or not c["in_order"]]
        if bad:
            found.append(
                f"WebSocket ({r['compression']}): {len(bad)} clients incomplete: {bad[:3]}"
            )
        if r["hub_dropped"]:
            found.append(f"WebSocket ({r['compression']}): {r['hub_dropped']} clients dropped")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pg",
        nargs="?",
        const=DEFAULT_PG,
        default=None,
        help=f"PostgreSQL instead of SQLite; admin DSN for scratch databases (default {DEFAULT_PG})",
    )
    parser.add_argument("--http-clients", type=int, default=16, help="concurrent HTTP clients")
    parser.add_argument("--seconds", type=int, default=10, help="HTTP seconds per path (0: skip)")
    parser.add_argument("--warmup", type=int, default=1, help="HTTP warm-up seconds per path")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated GET paths")
    parser.add_argument("--ws-clients", type=int, default=50, help="WebSocket clients (0: skip)")
    parser.add_argument("--ws-rate", type=int, default=1000, help="market_data events per second")
    parser.add_argument("--ws-seconds", type=int, default=10, help="seconds of publishing")
    parser.add_argument(
        "--ws-compression", default="deflate,none", help="client variants: deflate and/or none"
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="cProfile the node in each run into FILE.<path or variant>",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    # the load generator (run by the script itself in a child process)
    parser.add_argument("--worker", choices=("http", "ws"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--expected", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--compression", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return
    bad = {c for c in args.ws_compression.split(",") if c} - {"deflate", "none"}
    if bad:
        parser.error(f"unknown --ws-compression {sorted(bad)}; choose deflate and/or none")
    results = asyncio.run(run(args))
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        print_report(results, args)
    found = problems(results)
    if found:
        print("\n".join(found), file=sys.stderr)
        raise SystemExit("requests failed or events were lost: figures are void")


if __name__ == "__main__":
    main()
