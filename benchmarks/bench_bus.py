"""Bus benchmark: publish → handler, events per second, MemoryBus beside NautilusTrader.

Both buses are driven the same way: N messages published one at a time on one channel
(topic) to ONE subscribed Python handler, a bound method that increments a counter; the
counter is checked against N after every run, so the benchmark cannot measure nothing.
Each variant is timed ``--repeats`` times after a warm-up, on a fresh bus each time, and
the best run is reported.

CoreC variants (in this process, inside ``asyncio.run``):

- ``a``: pre-built Event, ``async def`` handler, ``await bus.publish(event)`` in a loop;
- ``b``: pre-built Event, plain (sync) handler;
- ``c``: a new envelope per event (``make_event``: fresh UUIDv7 id, clock read), pre-built
  payload, sync handler;
- ``d``: a new payload and a new envelope per event, sync handler.

NautilusTrader 1.221.0 runs in its own virtualenv (``benchmarks/.venv-nautilus``, made on
first run) as a subprocess (``benchmarks/nautilus_bus.py``) that prints one JSON line.

    .venv/bin/python benchmarks/bench_bus.py [--messages N] [--repeats R] [--skip-nautilus]
                                             [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from corec.core import channels
from corec.core.bus.memory import MemoryBus
from corec.core.clock import SystemClock
from corec.core.events import Event, Payload, make_event

HERE = Path(__file__).resolve().parent
NAUTILUS_VENV = HERE / ".venv-nautilus"
NAUTILUS_PYTHON = NAUTILUS_VENV / "bin" / "python"
NAUTILUS_SCRIPT = HERE / "nautilus_bus.py"
NAUTILUS_REQUIREMENT = "nautilus-trader==1.221.0"
NAUTILUS_VERSION = "1.221.0"

CHANNEL = channels.MARKET_DATA
SOURCE = "bench@local"
GROUP = "bench"
BID = Decimal("64000.10")
ASK = Decimal("64000.20")


class BenchTick(Payload, frozen=True, kw_only=True):
    """A small real payload: one quote (the same fields as the Nautilus side's message)."""

    TYPE: ClassVar[str] = "bench_tick"
    symbol: str
    bid: Decimal
    ask: Decimal
    ts_ns: int


class Counter:
    """The subscriber: counts what it receives and nothing else."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def handle(self, event: Event) -> None:
        self.n += 1

    async def handle_async(self, event: Event) -> None:
        self.n += 1


def _check(counter: Counter, messages: int) -> None:
    if counter.n != messages:
        raise AssertionError(f"handler saw {counter.n} events, expected {messages}")


def _new_bus(counter: Counter, *, is_async: bool) -> MemoryBus:
    bus = MemoryBus()
    bus.subscribe(CHANNEL, counter.handle_async if is_async else counter.handle, group=GROUP)
    return bus


def _prebuilt_event() -> Event:
    payload = BenchTick(symbol="BTC/USDT", bid=BID, ask=ASK, ts_ns=1)
    return make_event(CHANNEL, payload, source=SOURCE, clock=SystemClock())


async def run_prebuilt_async(messages: int) -> float:
    """Variant a: pre-built Event, ``async def`` handler."""
    counter = Counter()
    bus = _new_bus(counter, is_async=True)
    event = _prebuilt_event()
    publish = bus.publish
    start = time.perf_counter()
    for _ in range(messages):
        await publish(event)
    elapsed = time.perf_counter() - start
    _check(counter, messages)
    return elapsed


async def run_prebuilt_sync(messages: int) -> float:
    """Variant b: pre-built Event, sync handler."""
    counter = Counter()
    bus = _new_bus(counter, is_async=False)
    event = _prebuilt_event()
    publish = bus.publish
    start = time.perf_counter()
    for _ in range(messages):
        await publish(event)
    elapsed = time.perf_counter() - start
    _check(counter, messages)
    return elapsed


async def run_envelope_sync(messages: int) -> float:
    """Variant c: ``make_event`` per event (new UUIDv7, clock read), pre-built payload."""
    counter = Counter()
    bus = _new_bus(counter, is_async=False)
    payload = BenchTick(symbol="BTC/USDT", bid=BID, ask=ASK, ts_ns=1)
    clock = SystemClock()
    publish = bus.publish
    start = time.perf_counter()
    for _ in range(messages):
        await publish(make_event(CHANNEL, payload, source=SOURCE, clock=clock))
    elapsed = time.perf_counter() - start
    _check(counter, messages)
    return elapsed


async def run_payload_envelope_sync(messages: int) -> float:
    """Variant d: a new payload and a new envelope per event, sync handler."""
    counter = Counter()
    bus = _new_bus(counter, is_async=False)
    clock = SystemClock()
    publish = bus.publish
    start = time.perf_counter()
    for i in range(messages):
        payload = BenchTick(symbol="BTC/USDT", bid=BID, ask=ASK, ts_ns=i)
        await publish(make_event(CHANNEL, payload, source=SOURCE, clock=clock))
    elapsed = time.perf_counter() - start
    _check(counter, messages)
    return elapsed


Variant = tuple[str, str, Callable[[int], Awaitable[float]]]
VARIANTS: tuple[Variant, ...] = (
    ("a", "MemoryBus, pre-built Event, async handler", run_prebuilt_async),
    ("b", "MemoryBus, pre-built Event, sync handler", run_prebuilt_sync),
    ("c", "MemoryBus, make_event per event, sync handler", run_envelope_sync),
    ("d", "MemoryBus, payload + make_event per event, sync handler", run_payload_envelope_sync),
)


async def run_corec(messages: int, repeats: int, warmup: int) -> list[dict[str, Any]]:
    results = []
    for key, label, fn in VARIANTS:
        await fn(min(warmup, messages))
        runs = [messages / await fn(messages) for _ in range(repeats)]
        results.append(
            {
                "name": key,
                "label": label,
                "events_per_s": max(runs),
                "median_events_per_s": statistics.median(runs),
                "runs_events_per_s": runs,
            }
        )
    return results


# -- NautilusTrader, in its own venv -------------------------------------------------------
def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _installed_nautilus_version() -> str | None:
    if not NAUTILUS_PYTHON.exists():
        return None
    probe = subprocess.run(
        [str(NAUTILUS_PYTHON), "-c", "import nautilus_trader; print(nautilus_trader.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def ensure_nautilus_venv() -> None:
    """Create ``benchmarks/.venv-nautilus`` with NautilusTrader unless it is there already."""
    if _installed_nautilus_version() == NAUTILUS_VERSION:
        return
    if not NAUTILUS_PYTHON.exists():
        _log(f"creating {NAUTILUS_VENV} ...")
        # From a venv, ``-m venv`` builds on the same base interpreter (Python 3.11 here).
        subprocess.run([sys.executable, "-m", "venv", str(NAUTILUS_VENV)], check=True)
    _log(f"installing {NAUTILUS_REQUIREMENT} into {NAUTILUS_VENV} (once) ...")
    subprocess.run(
        [str(NAUTILUS_PYTHON), "-m", "pip", "install", "--quiet", NAUTILUS_REQUIREMENT],
        check=True,
    )
    found = _installed_nautilus_version()
    if found != NAUTILUS_VERSION:
        raise RuntimeError(f"expected nautilus_trader {NAUTILUS_VERSION}, found {found}")


def run_nautilus(messages: int, repeats: int, warmup: int) -> dict[str, Any]:
    ensure_nautilus_venv()
    cmd = [
        str(NAUTILUS_PYTHON),
        str(NAUTILUS_SCRIPT),
        f"--messages={messages}",
        f"--repeats={repeats}",
        f"--warmup={warmup}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"nautilus_bus.py failed ({proc.returncode}):\n{proc.stderr}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"nautilus_bus.py printed no JSON line:\n{proc.stdout}")
    return json.loads(lines[-1])


# -- report ----------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpu_model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }


def format_table(report: dict[str, Any]) -> str:
    """The results as a plain-text table (fits a terminal, a CI log and the README)."""
    nautilus = report["nautilus"]
    base = nautilus["events_per_s"] if nautilus else None
    rows = [(r, report["corec_peak_rss_kib"]) for r in report["corec"]]
    if nautilus:
        rows.append((nautilus, nautilus["peak_rss_kib"]))
    header = ("variant", "events/s (best)", "median", "ns/event", "vs Nautilus", "peak RSS")
    lines = []
    for r, rss_kib in rows:
        eps = r["events_per_s"]
        median = statistics.median(r["runs_events_per_s"])
        name = r["label"] if r["name"] == "nautilus" else f"{r['name']}  {r['label']}"
        lines.append(
            (
                name,
                f"{eps:,.0f}",
                f"{median:,.0f}",
                f"{1e9 / eps:,.0f}",
                f"{eps / base:.2f}x" if base else "-",
                f"{rss_kib / 1024:.1f} MiB",
            )
        )
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(cells)

    m = report["machine"]
    out = [
        f"Bus: publish → handler, {report['messages']:,} events per run, "
        f"best of {report['repeats']} after a warm-up",
        f"Python {m['python']} · CPU {m['cpu_model']} · {m['cpu_count']} cores",
        "",
        fmt(header),
        "  ".join("-" * w for w in widths),
        *(fmt(row) for row in lines),
    ]
    if nautilus:
        out += [
            "",
            f"NautilusTrader {nautilus['nautilus_trader']} (Python {nautilus['python']}) ran in "
            f"{NAUTILUS_VENV.relative_to(HERE.parent)}; peak RSS is per process.",
        ]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="events per run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the best counts")
    parser.add_argument("--warmup", type=int, default=100_000, help="events of the warm-up run")
    parser.add_argument("--skip-nautilus", action="store_true", help="measure CoreC only")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if args.messages < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--messages and --repeats must be positive, --warmup not negative")

    corec = asyncio.run(run_corec(args.messages, args.repeats, args.warmup))
    corec_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    nautilus = None
    if not args.skip_nautilus:
        nautilus = run_nautilus(args.messages, args.repeats, args.warmup)
        for r in corec:
            r["ratio_vs_nautilus"] = r["events_per_s"] / nautilus["events_per_s"]

    report = {
        "benchmark": "bus_publish_to_handler",
        "messages": args.messages,
        "repeats": args.repeats,
        "warmup": min(args.warmup, args.messages),
        "machine": machine(),
        "corec": corec,
        "corec_peak_rss_kib": corec_rss,
        "nautilus": nautilus,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_table(report))


if __name__ == "__main__":
    main()
