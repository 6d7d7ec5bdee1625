"""NautilusTrader's MessageBus, publish → one Python handler, in messages per second.

Runs inside its own virtualenv (``benchmarks/.venv-nautilus``, ``nautilus-trader==1.221.0``)
as a subprocess of ``benchmarks/bench_bus.py``; it must not import ``corec``. It prints its
result as one JSON line on stdout.

Driven exactly as the MemoryBus side: one topic, one subscribed handler (a bound method that
increments a counter), ``msgbus.publish(topic, msg)`` called N times in a plain loop with one
pre-built message; the best of ``--repeats`` timed runs after a warm-up, each run on a fresh
bus and counter, and the counter checked against N after every run.

    benchmarks/.venv-nautilus/bin/python benchmarks/nautilus_bus.py --messages 1000000
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from dataclasses import dataclass
from decimal import Decimal

import nautilus_trader
from nautilus_trader.common.component import MessageBus, TestClock
from nautilus_trader.model.identifiers import TraderId

TOPIC = "data.quotes.BENCH"


@dataclass(frozen=True, slots=True)
class BenchTick:
    """The pre-built message: the same fields as the CoreC side's payload."""

    symbol: str
    bid: Decimal
    ask: Decimal
    ts_ns: int


class Counter:
    """The subscriber: counts what it receives and nothing else."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def handle(self, msg: object) -> None:
        self.n += 1


def run_once(messages: int) -> float:
    """Publish ``messages`` messages on a fresh bus; return the elapsed seconds."""
    msgbus = MessageBus(trader_id=TraderId("BENCH-001"), clock=TestClock())
    counter = Counter()
    msgbus.subscribe(TOPIC, counter.handle)
    msg = BenchTick(symbol="BTC/USDT", bid=Decimal("64000.10"), ask=Decimal("64000.20"), ts_ns=1)
    publish = msgbus.publish
    topic = TOPIC
    start = time.perf_counter()
    for _ in range(messages):
        publish(topic, msg)
    elapsed = time.perf_counter() - start
    if counter.n != messages:
        raise AssertionError(f"handler saw {counter.n} messages, expected {messages}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=100_000)
    args = parser.parse_args()

    run_once(min(args.warmup, args.messages))
    runs = [args.messages / run_once(args.messages) for _ in range(args.repeats)]
    result = {
        "name": "nautilus",
        "label": "NautilusTrader MessageBus, pre-built msg, sync handler",
        "nautilus_trader": nautilus_trader.__version__,
        "python": platform.python_version(),
        "messages": args.messages,
        "repeats": args.repeats,
        "events_per_s": max(runs),
        "runs_events_per_s": runs,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
