"""End to end: the demo configuration on a slice of the real recording, figures checked
in every plugin's tables, and the second-run rules (fresh start, idempotent resume)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from corec.core import money
from corec.core.config import load_config
from corec.core.nucleus import Node
from corec.core.registry import discover_plugins
from corec.plugins.alert_manager import models as alert_models
from corec.plugins.alert_manager.records import list_alerts
from corec.plugins.capital_pool import models as pool_models
from corec.plugins.capital_pool.ledger import CASH, FEES, REALIZED_PNL
from corec.plugins.exchange_sync import models as sync_models
from corec.plugins.trading_execution import models as trading_models
from tests.conftest import write_recording_slice
from tests.harness import count_rows

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
SLICE_ROWS = 8000


def demo_config(tmp_path: Path, recording: Path, **node: Any) -> Path:
    """configs/demo.yaml with the recording and data dir moved under ``tmp_path``."""
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    data["node"].update({"data_dir": str(tmp_path / "var"), **node})
    data["exchange_sync"]["replay"]["path"] = str(recording)
    data["api"]["port"] = 0  # any free port: never the user's 8000
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


async def run_node(config_path: Path) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Run a node to the end of its recording; return (reason, status before, after, health)."""
    classes = discover_plugins()
    config = load_config(config_path, {n: c.Config for n, c in classes.items()}, env={})
    node = Node(config, classes)
    await node.start()
    before = await node.status()
    try:
        reason = await node.run(handle_signals=False, duration_s=120)
    finally:
        await node.stop()
    after = await node.status()
    health = node.health()
    figures = {
        "ledger": node.plugin("capital_pool").service.ledger,  # type: ignore[attr-defined]
        "stores": dict(node.stores),
    }
    tables = await read_tables(figures["stores"])
    await node.close()
    return reason, before, {**after, "tables": tables, "ledger": figures["ledger"]}, health


async def read_tables(stores: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def rows(conn: Any, query: Any) -> list[Any]:
        return list(conn.execute(query).mappings().all())

    trading, pool = stores["trading_execution"], stores["capital_pool"]
    out["trades"] = await trading.read(lambda c: rows(c, select(trading_models.trades)))
    out["positions"] = await trading.read(lambda c: rows(c, select(trading_models.positions)))
    out["fills"] = await count_rows(trading, trading_models.fills)
    out["entries"] = await pool.read(lambda c: rows(c, select(pool_models.journal_entries)))
    out["lines"] = await pool.read(lambda c: rows(c, select(pool_models.journal_lines)))
    out["contributions"] = await pool.read(lambda c: rows(c, select(pool_models.contributions)))
    out["distributions"] = await pool.read(lambda c: rows(c, select(pool_models.distributions)))
    states = select(pool_models.pool_state).order_by(pool_models.pool_state.c.seq)
    out["pool_state"] = await pool.read(lambda c: rows(c, states))
    out["tickers"] = await count_rows(stores["exchange_sync"], sync_models.tickers)
    out["alerts"] = await count_rows(stores["alert_manager"], alert_models.alerts)
    return out


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    return write_recording_slice(tmp_path / "slice.csv", SLICE_ROWS)


async def test_demo_slice_end_to_end(tmp_path: Path, recording: Path) -> None:
    reason, before, after, health = await run_node(demo_config(tmp_path, recording))
    tables, ledger = after["tables"], after["ledger"]

    assert reason == "recording slice.csv finished"
    sync = health["plugins"]["exchange_sync"]
    assert sync["bars_processed"] == SLICE_ROWS
    assert sync["malformed_rows"] == 0
    assert tables["tickers"] == SLICE_ROWS
    assert after["exchange_sync"]["tickers_stored"] == SLICE_ROWS
    # the last bar opens at 2022-01-06 12:20 (row 8000) and is stamped at its close
    assert after["exchange_sync"]["last_ts"] == "2022-01-06T12:21:00Z"

    # opening contributions: 5000 + 3000 + 2000, units 1:1
    assert before["pool"]["nav_usd"] == Decimal("10000.00")
    assert before["pool"]["nav_per_unit"] == Decimal("1.00000000")
    assert sorted((c["member"], c["amount_usd"], c["units"]) for c in tables["contributions"]) == [
        ("alice", Decimal(5000), Decimal(5000)),
        ("bob", Decimal(3000), Decimal(3000)),
        ("carol", Decimal(2000), Decimal(2000)),
    ]

    # every closed trade was settled exactly once into the ledger
    trades = tables["trades"]
    assert len(trades) > 20, "the slice should trade"
    settlements = [e for e in tables["entries"] if e["kind"] == "settlement"]
    assert sorted(e["ref"] for e in settlements) == sorted(f"trade:{t['trade_id']}" for t in trades)
    assert after["trading"]["trades"] == len(trades)
    assert tables["fills"] == 2 * len(trades) + len(tables["positions"])

    # each trade's realized PnL is gross - fees, and the ledger's accounts agree
    realized = sum((t["realized_pnl_usd"] for t in trades), Decimal(0))
    fees = sum((t["fees_usd"] for t in trades), Decimal(0))
    for t in trades:
        move = t["exit_price"] - t["entry_price"]
        gross = (move if t["side"] == "long" else -move) * t["quantity"]
        assert t["realized_pnl_usd"] == gross - t["fees_usd"]
    assert after["trading"]["realized_pnl_usd"] == realized
    gross = realized + fees
    assert -ledger.balance(REALIZED_PNL) == gross
    assert ledger.balance(FEES) == fees

    # entries balance; journal seq is gapless
    seqs = [e["seq"] for e in tables["entries"]]
    assert seqs == list(range(1, len(seqs) + 1))
    per_entry: dict[int, Decimal] = {}
    for line in tables["lines"]:
        per_entry[line["entry_seq"]] = (
            per_entry.get(line["entry_seq"], Decimal(0)) + line["amount_usd"]
        )
    assert set(per_entry.values()) == {Decimal(0)}

    # carol does not reinvest: the only flows after the opening are her distributions
    distributions = tables["distributions"]
    assert {d["member"] for d in distributions} <= {"carol"}
    paid = sum((d["amount_usd"] for d in distributions), Decimal(0))
    burned = sum((d["units"] for d in distributions), Decimal(0))

    # NAV = opening capital + realized - distributions + unrealized of the open position
    figures = ledger.figures()
    assert figures.nav_usd == Decimal(10000) + realized - paid + figures.unrealized_pnl_usd
    assert figures.cash_usd + figures.allocated_usd == Decimal(10000) + realized - paid
    assert len(tables["positions"]) == len([a for a in ledger.allocations.values() if a.position])

    # members own the NAV in proportion to their units
    units = {"alice": Decimal(5000), "bob": Decimal(3000), "carol": Decimal(2000) - burned}
    members = {m["member"]: m for m in after["pool"]["members"]}
    assert {k: v["units"] for k, v in members.items()} == units
    total_units = sum(units.values(), Decimal(0))
    for name, held in units.items():
        exact = money.equity_usd(held, figures.nav_usd, total_units)
        assert members[name]["equity_usd"] == money.pay(exact, money.CENT)
    assert after["pool"]["nav_usd"] == figures.nav_usd.quantize(money.CENT)
    assert after["pool"]["nav_per_unit"] == money.divide(figures.nav_usd, total_units).quantize(
        money.NAV_PER_UNIT_QUANTUM
    )

    # the pool_state history ends at the ledger's figures after the last entry
    last = tables["pool_state"][-1]
    assert last["seq"] == seqs[-1]
    assert last["cash_usd"] == figures.cash_usd
    assert last["units"] == total_units

    # alerts: what the manager stored is what status counts; nothing dead-lettered
    assert after["alerts"]["total"] == tables["alerts"] > 0
    assert sum(health["bus"]["dead_letters"].values()) == 0
    assert ledger.balance(CASH) >= 0


async def test_second_run_fresh_start_gives_the_same_figures(
    tmp_path: Path, recording: Path
) -> None:
    config = demo_config(tmp_path, recording)
    _, _, first, _ = await run_node(config)
    _, _, second, _ = await run_node(config)
    assert len(second["tables"]["contributions"]) == 3
    assert second["tables"]["tickers"] == SLICE_ROWS
    assert second["pool"] == first["pool"]
    assert second["trading"] == first["trading"]


async def test_second_run_without_fresh_start_resumes_and_writes_nothing_twice(
    tmp_path: Path, recording: Path
) -> None:
    config = demo_config(tmp_path, recording, fresh_start=False)
    _, _, first, _ = await run_node(config)
    reason, _, second, health = await run_node(config)
    assert reason == "recording slice.csv finished"
    assert health["plugins"]["exchange_sync"]["bars_processed"] == 0
    assert health["plugins"]["exchange_sync"]["resumed_rows"] == SLICE_ROWS
    assert second["tables"]["tickers"] == SLICE_ROWS
    assert len(second["tables"]["contributions"]) == 3
    assert second["pool"]["units"] == first["pool"]["units"]  # no distribution paid twice
    assert second["tables"]["distributions"] == first["tables"]["distributions"]
    assert second["trading"]["trades"] == first["trading"]["trades"]
    assert [e["ref"] for e in second["tables"]["entries"]] == [
        e["ref"] for e in first["tables"]["entries"]
    ]


async def test_invalid_events_go_to_dead_letter_not_into_a_table(make_config: Any) -> None:
    """A trade for an allocation that does not exist, and a wrong payload type on
    trading_results: both dead-lettered with an alert the manager records; the ledger,
    the trades and the alerts of the broken events stay untouched."""
    from corec.core import channels
    from corec.core.events import make_event
    from corec.messages.alerts import Alert
    from corec.messages.dead_letter import DeadLetter
    from corec.messages.exchange_data import Ticker, TickerBatch
    from corec.messages.trading_results import TradeClosed
    from tests.harness import started_node

    config = make_config(
        {
            "node": {"plugins": ["capital_pool", "alert_manager"], "clock": "replay"},
            "capital_pool": {"members": [{"name": "alice", "opening_contribution_usd": 1000}]},
        }
    )
    async with started_node(config, channels.DEAD_LETTER, channels.ALERTS) as (node, rec):
        pool_store = node.store("capital_pool")
        entries_before = await count_rows(pool_store, pool_models.journal_entries)
        forged = TradeClosed(
            trade_id="t-forged",
            allocation_id="no-such-allocation",
            strategy="s",
            exchange="ftx",
            market="futures",
            symbol="BTC/USD:USD",
            side="long",
            quantity=Decimal(1),
            entry_price=Decimal(100),
            exit_price=Decimal(200),
            fees_usd=Decimal(0),
            realized_pnl_usd=Decimal(100),
            opened_ts_ns=1,
            closed_ts_ns=2,
            exit_reason="signal",
        )
        wrong = TickerBatch(
            tickers=(
                Ticker(
                    exchange="x",
                    market="spot",
                    symbol="A/B",
                    last=Decimal(1),
                    exchange_ts_ns=1,
                    received_ts_ns=1,
                ),
            )
        )
        for payload in (forged, wrong):
            await node.bus.publish(
                make_event(channels.TRADING_RESULTS, payload, source="test@x", clock=node.clock)
            )

        letters = rec.payloads(DeadLetter)
        assert [(d.channel, d.event_type, d.handler) for d in letters] == [
            ("trading_results", "trade_closed", "capital_pool"),
            ("trading_results", "ticker_batch", "capital_pool"),
        ]
        assert "no-such-allocation is not open" in letters[0].error
        assert "not a position or trade" in letters[1].error
        assert [a.name for a in rec.payloads(Alert)] == [
            "pool_phase_changed",
            "dead_letter",
            "dead_letter",
        ]
        # nothing reached the ledger; the pool is what the opening contribution made it
        assert await count_rows(pool_store, pool_models.journal_entries) == entries_before
        assert node.plugin("capital_pool").service.ledger.nav_usd() == Decimal(1000)  # type: ignore[attr-defined]
        # alert rows are written behind: stop the node, then count what it stored
        await node.stop()
        stored = await list_alerts(node.store("alert_manager"), limit=100)  # type: ignore[arg-type]
        # the phase change, the opening contribution (the large_contribution rule), and
        # the dead_letter alert (the second one is a repeat of the first)
        assert sorted((r["name"], r["occurrences"]) for r in stored) == [
            ("dead_letter", 2),
            ("large_contribution", 1),
            ("pool_phase_changed", 1),
        ]


async def test_the_demo_runs_the_same_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    """Every plugin on one PostgreSQL database: the same figures as on SQLite."""
    recording = write_recording_slice(tmp_path / "slice.csv", 3000)
    sqlite_dir = tmp_path / "sqlite"
    sqlite_dir.mkdir()
    _, _, on_sqlite, _ = await run_node(demo_config(sqlite_dir, recording))

    pg_dir = tmp_path / "pg"
    pg_dir.mkdir()
    config = demo_config(pg_dir, recording)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    for plugin in ("exchange_sync", "trading_execution", "capital_pool", "alert_manager"):
        data.setdefault(plugin, {})["database_url"] = pg_url
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    reason, _, on_pg, _ = await run_node(config)

    assert reason == "recording slice.csv finished"
    assert on_pg["pool"] == on_sqlite["pool"]
    assert on_pg["trading"] == on_sqlite["trading"]
    assert on_pg["tables"]["tickers"] == on_sqlite["tables"]["tickers"] == 3000
    assert [e["ref"].split(":")[0] for e in on_pg["tables"]["entries"]] == [
        e["ref"].split(":")[0] for e in on_sqlite["tables"]["entries"]
    ]
    assert [t["realized_pnl_usd"] for t in on_pg["tables"]["trades"]] == [
        t["realized_pnl_usd"] for t in on_sqlite["tables"]["trades"]
    ]
