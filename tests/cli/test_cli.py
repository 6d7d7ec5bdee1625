"""The ``corec`` command as a user runs it: real processes, real files, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import write_recording_slice

ROOT = Path(__file__).resolve().parents[2]


def corec(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m corec ARGS`` in ``cwd``; never raises on a non-zero exit."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("COREC")}
    full_env["COREC__API__PORT"] = "0"  # never the user's 8000
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "corec", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_config(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "corec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def pool_config(tmp_path: Path, **pool: Any) -> Path:
    return write_config(
        tmp_path,
        {
            "node": {"data_dir": str(tmp_path / "var")},
            "capital_pool": {
                "members": [
                    {"name": "alice", "opening_contribution_usd": 1000},
                    {"name": "bob"},
                ],
                **pool,
            },
        },
    )


def journal_entries(tmp_path: Path) -> int:
    import sqlite3

    with sqlite3.connect(tmp_path / "var" / "capital_pool.db") as conn:
        return int(conn.execute("select count(*) from journal_entries").fetchone()[0])


def test_config_error_names_file_line_field_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "node:\n  data_dir: var\ncapital_pool:\n  min_contribution_usd: lots\n  max_active_ratio: 2\n",
        encoding="utf-8",
    )
    result = corec("status", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert str(path) in result.stderr
    assert "line 4: capital_pool.min_contribution_usd:" in result.stderr
    assert "line 5: capital_pool.max_active_ratio:" in result.stderr
    assert "less than or equal to 1" in result.stderr


def test_config_unknown_section_and_env_override_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"capital_pol": {"min_contribution_usd": 100}})
    result = corec("status", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "capital_pol: unknown section" in result.stderr
    good = pool_config(tmp_path)
    result = corec(
        "status",
        "--config",
        str(good),
        cwd=tmp_path,
        env={"COREC__CAPITAL_POOL__MAX_ACTIVE_RATIO": "x"},
    )
    assert result.returncode == 2
    assert "COREC__CAPITAL_POOL__MAX_ACTIVE_RATIO" in result.stderr


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = corec("status", "--config", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert result.returncode == 2
    assert "nope.yaml" in result.stderr and "cannot read" in result.stderr


def test_contribute_withdraw_and_show(tmp_path: Path) -> None:
    config = str(pool_config(tmp_path))
    result = corec(
        "pool", "contribute", "bob", "500", "--id", "c-1", "--config", config, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "bob +500.00 USD -> 500.00000000 units" in result.stdout
    again = corec(
        "pool", "contribute", "bob", "500", "--id", "c-1", "--config", config, cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert journal_entries(tmp_path) == 1  # c-1, once (opening contributions are the node's)
    result = corec("pool", "contribute", "alice", "1000", "--config", config, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = corec("pool", "withdraw", "alice", "250.50", "--config", config, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "-250.50 USD" in result.stdout
    shown = corec("pool", "show", "--json", "--config", config, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    pool = json.loads(shown.stdout)
    assert pool["nav_usd"] == "1249.50"
    assert pool["nav_per_unit"] == "1.00000000"
    assert {m["member"]: m["equity_usd"] for m in pool["members"]} == {
        "alice": "749.50",
        "bob": "500.00",
    }


@pytest.fixture(scope="module")
def pool_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pool with alice (1000 USD + 100 USD) and bob (nothing), made once."""
    base = tmp_path_factory.mktemp("pool-template")
    config = str(pool_config(base))
    for amount, flow_id in (("1000", "first"), ("100", "setup")):
        done = corec(
            "pool", "contribute", "alice", amount, "--id", flow_id, "--config", config, cwd=base
        )
        assert done.returncode == 0, done.stderr
    return base


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("contribute", "bob", "99.99"), "below the minimum of 100"),
        (("contribute", "dave", "500"), "unknown member 'dave'; members are: alice, bob"),
        (("contribute", "bob", "ten"), "AMOUNT_USD: 'ten' is not a decimal number"),
        (("contribute", "bob", "100.001"), "whole cents"),
        (("contribute", "bob", "0"), "amount must be a positive number of USD"),
        (("contribute", "bob", "1e30"), "amount must be below"),
        (("withdraw", "alice", "1100.01"), "more than alice's equity of 1100.00 USD"),
        (("withdraw", "bob", "1"), "more than bob's equity of 0.00 USD"),
        (("withdraw", "alice", "NaN"), "not a finite number"),
    ],
)
def test_refused_commands_exit_2_and_write_nothing(
    pool_template: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    shutil.copytree(pool_template / "var", tmp_path / "var")
    config = str(pool_config(tmp_path))
    before = journal_entries(tmp_path)
    assert before == 2
    result = corec("pool", *args, "--config", config, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in " ".join(result.stderr.split())
    assert journal_entries(tmp_path) == before


def test_a_refused_command_on_a_fresh_data_dir_writes_nothing(tmp_path: Path) -> None:
    import sqlite3

    config = str(pool_config(tmp_path))
    result = corec("pool", "contribute", "alice", "50", "--config", config, cwd=tmp_path)
    assert result.returncode == 2
    assert "below the minimum of 100" in " ".join(result.stderr.split())
    with sqlite3.connect(tmp_path / "var" / "capital_pool.db") as conn:
        for table in ("members", "journal_entries", "journal_lines", "contributions", "pool_state"):
            assert conn.execute(f"select count(*) from {table}").fetchone() == (0,), table
    # accepted: the configured member is stored with its first contribution, nothing else
    result = corec("pool", "contribute", "bob", "100", "--config", config, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "var" / "capital_pool.db") as conn:
        assert conn.execute("select name from members").fetchall() == [("bob",)]
        assert conn.execute("select count(*) from journal_entries").fetchone() == (1,)


def test_withdrawal_above_free_cash_is_queued_and_can_be_cancelled(tmp_path: Path) -> None:
    import sqlite3

    config = str(pool_config(tmp_path))
    for member, amount in (("alice", "1000"), ("bob", "100")):
        done = corec("pool", "contribute", member, amount, "--config", config, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    # move 900 USD into a trade's allocation by hand, as a granted allocation would
    with sqlite3.connect(tmp_path / "var" / "capital_pool.db") as conn:
        seq = conn.execute("select max(seq) from journal_entries").fetchone()[0] + 1
        conn.execute(
            "insert into journal_entries values (?, 0, 'allocation', 'allocation:x', 'test')",
            (seq,),
        )
        conn.execute(
            "insert into journal_lines (entry_seq, account, amount_usd, units)"
            " values (?, 'asset:allocated', '900', '0')",
            (seq,),
        )
        conn.execute(
            "insert into journal_lines (entry_seq, account, amount_usd, units)"
            " values (?, 'asset:cash', '-900', '0')",
            (seq,),
        )
    result = corec(
        "pool", "withdraw", "alice", "500", "--id", "w-1", "--config", config, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "w-1: alice -500.00 USD queued" in " ".join(result.stdout.split())
    with sqlite3.connect(tmp_path / "var" / "capital_pool.db") as conn:
        assert conn.execute("select count(*) from withdrawals").fetchone() == (0,)
        assert conn.execute("select status from withdrawal_queue").fetchall() == [("queued",)]
    cancel = corec("pool", "cancel-withdrawal", "w-1", "--config", config, cwd=tmp_path)
    assert cancel.returncode == 0, cancel.stderr
    assert "w-1: alice 500.00 USD cancelled" in " ".join(cancel.stdout.split())
    unknown = corec("pool", "cancel-withdrawal", "w-9", "--config", config, cwd=tmp_path)
    assert unknown.returncode == 2
    assert "no queued withdrawal w-9" in unknown.stderr


def test_run_replays_and_status_reports_the_issue_keys(tmp_path: Path) -> None:
    recording = write_recording_slice(tmp_path / "slice.csv", 3000)
    data = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text(encoding="utf-8"))
    data["node"]["data_dir"] = str(tmp_path / "var")
    data["exchange_sync"]["replay"]["path"] = str(recording)
    config = str(write_config(tmp_path, data))

    run = corec("run", "--config", config, "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["stopped_because"] == "recording slice.csv finished"
    assert summary["market_data"]["bars_processed"] == 3000
    assert summary["market_data"]["tickers_stored"] == 3000
    assert summary["pool"]["start"]["nav_usd"] == "10000.00"
    assert [m["member"] for m in summary["members"]] == ["alice", "bob", "carol"]
    assert (tmp_path / "var" / "corec.log").stat().st_size > 0

    status = corec("status", "--json", "--config", config, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    pool = data["pool"]
    assert set(pool) >= {
        "nav_usd",
        "nav_per_unit",
        "units",
        "cash_usd",
        "allocated_usd",
        "phase",
        "risk_per_trade",
        "members",
    }
    assert set(pool["members"][0]) == {"member", "units", "equity_usd"}
    assert set(data["exchange_sync"]) == {"tickers_stored", "last_ts"}
    assert data["exchange_sync"]["tickers_stored"] == 3000
    assert {"trades", "realized_pnl_usd"} <= set(data["trading"])
    assert set(data["alerts"]) == {"total", "by_severity", "firing", "notifications_pending"}
    assert set(data["alerts"]["by_severity"]) == {"critical", "high", "medium", "low"}
    assert sum(data["alerts"]["by_severity"].values()) == data["alerts"]["total"]
    assert 0 <= data["alerts"]["firing"] <= data["alerts"]["total"]
    assert data["alerts"]["notifications_pending"] == 0  # the log receiver sends at once
    # decimals are strings, and the summary's end figures are what status reads
    assert isinstance(pool["nav_usd"], str) and isinstance(data["trading"]["realized_pnl_usd"], str)
    assert pool["nav_usd"] == summary["pool"]["end"]["nav_usd"]
    assert data["trading"]["trades"] == summary["trading"]["trades"]
    equity = sum(Decimal(m["equity_usd"]) for m in pool["members"])
    assert Decimal(pool["nav_usd"]) - equity < Decimal("0.03")

    alerts = corec("alerts", "list", "--json", "--config", config, cwd=tmp_path)
    assert alerts.returncode == 0, alerts.stderr
    rows = json.loads(alerts.stdout)
    assert len(rows) == min(50, data["alerts"]["total"])
    assert {
        "alert_id",
        "name",
        "severity",
        "state",
        "message",
        "labels",
        "first_ts",
        "occurrences",
    } <= set(rows[0])


def test_run_with_a_malformed_recording_reports_and_exits_0(tmp_path: Path) -> None:
    recording = write_recording_slice(tmp_path / "slice.csv", 200)
    lines = recording.read_text(encoding="utf-8").splitlines()
    lines.insert(5, "2021-12-31 23:05:30.000000,abc,1,1,1,1")
    lines.insert(9, "not,a,row")
    recording.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = write_config(
        tmp_path,
        {
            "node": {"data_dir": str(tmp_path / "var")},
            "exchange_sync": {"replay": {"path": str(recording)}},
        },
    )
    run = corec("run", "--config", str(config), "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["market_data"]["bars_processed"] == 200
    assert summary["market_data"]["malformed_rows"] == 2
    assert summary["market_data"]["problems"] == [
        "slice.csv:6: open 'abc' is not a number",
        "slice.csv:10: expected 6 columns, got 3",
    ]


def test_duration_stops_a_live_style_node(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        {
            "node": {
                "data_dir": str(tmp_path / "var"),
                "plugins": ["capital_pool", "alert_manager"],
            },
        },
    )
    run = corec("run", "--config", str(config), "--duration", "0.5", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["stopped_because"] == "duration elapsed"


def test_db_upgrade_creates_every_database(tmp_path: Path) -> None:
    config = str(pool_config(tmp_path))
    result = corec("db", "upgrade", "--config", config, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    heads = {
        "exchange_sync": "0002",
        "trading_execution": "0001",
        "capital_pool": "0004",
        "alert_manager": "0002",
        "macro_sync": "0001",
        "daily_settlement": "0001",
    }
    for name, head in heads.items():
        assert f"{name}: sqlite at revision {head}" in result.stdout
        assert (tmp_path / "var" / f"{name}.db").exists()


def test_sigterm_mid_replay_keeps_trading_and_the_pool_in_step(tmp_path: Path) -> None:
    """Stop a resuming node with SIGTERM several times in the middle of a replay, then let
    it finish: every closed trade is settled once, every open allocation funds an open
    position, and the replay published no bar twice."""
    import signal
    import sqlite3
    import time

    recording = write_recording_slice(tmp_path / "slice.csv", 20000)
    data = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text(encoding="utf-8"))
    data["node"].update({"data_dir": str(tmp_path / "var"), "fresh_start": False})
    data["exchange_sync"]["replay"]["path"] = str(recording)
    config = str(write_config(tmp_path, data))
    env = {k: v for k, v in os.environ.items() if not k.startswith("COREC")}
    env["COREC__API__PORT"] = "0"  # never the user's 8000
    bars = 0
    log = tmp_path / "var" / "corec.log"
    for delay_s in (0.4, 1.2, 0.8):
        starts = log.read_text(encoding="utf-8").count('"node_started"') if log.exists() else 0
        process = subprocess.Popen(
            [sys.executable, "-m", "corec", "run", "--config", config, "--json"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not (
            log.exists() and log.read_text(encoding="utf-8").count('"node_started"') > starts
        ):
            assert time.monotonic() < deadline and process.poll() is None, "the node did not start"
            time.sleep(0.05)
        time.sleep(delay_s)  # mid-replay (the whole slice takes about 2 s)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        # -15 only if the signal landed while the finished process was exiting (CPython
        # restores default handlers during finalization): the summary must be complete
        assert process.returncode in (0, -signal.SIGTERM), err
        summary = json.loads(out)
        assert summary["stopped_because"] in {"signal SIGTERM", "recording slice.csv finished"}
        bars += summary["market_data"]["bars_processed"]
    final = corec("run", "--config", config, "--json", cwd=tmp_path)
    assert final.returncode == 0, final.stderr
    bars += json.loads(final.stdout)["market_data"]["bars_processed"]
    assert bars == 20000  # each bar published exactly once over all the runs

    var = tmp_path / "var"
    with (
        sqlite3.connect(var / "trading_execution.db") as trading,
        sqlite3.connect(var / "capital_pool.db") as pool,
    ):
        trades = dict(trading.execute("select allocation_id, trade_id from trades").fetchall())
        positions = dict(
            trading.execute("select allocation_id, trade_id from positions").fetchall()
        )
        released = dict(
            pool.execute("select allocation_id, trade_id from allocations where status='released'")
        )
        still_open = dict(
            pool.execute("select allocation_id, trade_id from allocations where status='open'")
        )
        settlements = {
            r for (r,) in pool.execute("select ref from journal_entries where kind='settlement'")
        }
        lines = pool.execute("select entry_seq, amount_usd from journal_lines").fetchall()
    assert trades == released
    assert settlements == {f"trade:{t}" for t in trades.values()}
    assert still_open == positions
    per_entry: dict[int, Decimal] = {}
    for seq, amount in lines:
        per_entry[seq] = per_entry.get(seq, Decimal(0)) + Decimal(amount)
    assert set(per_entry.values()) == {Decimal(0)}
    with sqlite3.connect(var / "exchange_sync.db") as sync:
        assert sync.execute("select count(*) from tickers").fetchone()[0] == 20000


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COREC__EXCHANGE_SYNC__REPLAY__SPEED": "0"}, "speed: must be 'max' or a positive"),
        (
            {"COREC__CAPITAL_POOL__DATABASE_URL": "mysql://x/y"},
            "must be a sqlite:///path or postgresql",
        ),
        ({"COREC__NOPE__X": "1"}, "environment COREC__NOPE__X: nope: unknown section"),
    ],
)
def test_values_that_would_fail_at_run_time_are_config_errors(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    result = corec("run", "--config", str(pool_config(tmp_path)), cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())
    assert not (tmp_path / "var").exists()  # nothing started, nothing written


def test_an_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://corec:s3cret@127.0.0.1:1/pool"
    env = {"COREC__CAPITAL_POOL__DATABASE_URL": url}
    result = corec("status", "--config", str(pool_config(tmp_path)), cwd=tmp_path, env=env)
    assert result.returncode == 1
    text = " ".join(result.stderr.split())
    assert (
        "StoreError: capital_pool: cannot use the database postgresql+asyncpg://corec:***@127.0.0.1:1/pool"
        in text
    )
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr


def test_a_replay_stamps_its_start_in_the_recording_time(tmp_path: Path) -> None:
    recording = write_recording_slice(tmp_path / "slice.csv", 100)
    config = write_config(
        tmp_path,
        {
            "node": {"data_dir": str(tmp_path / "var")},
            "exchange_sync": {"replay": {"path": str(recording)}},
            "capital_pool": {"members": [{"name": "alice", "opening_contribution_usd": 1000}]},
        },
    )
    assert corec("run", "--config", str(config), "--json", cwd=tmp_path).returncode == 0
    rows = json.loads(
        corec("alerts", "list", "--json", "--config", str(config), cwd=tmp_path).stdout
    )
    phase = next(r for r in rows if r["name"] == "pool_phase_changed")
    assert phase["first_ts"] == "2021-12-31T23:02:00Z"  # the first bar's close, not 1970


def test_members_add_and_list(tmp_path: Path) -> None:
    config = str(pool_config(tmp_path))
    added = corec("members", "add", "dave", "--no-reinvest", "--config", config, cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert "member dave: added (profit paid out daily)" in added.stdout
    again = corec("members", "add", "dave", "--no-reinvest", "--config", config, cwd=tmp_path)
    assert again.returncode == 0 and "already a member" in again.stdout
    other = corec("members", "add", "dave", "--config", config, cwd=tmp_path)
    assert other.returncode == 2
    assert "dave is a member already, with reinvest=False" in other.stderr
    bad = corec("members", "add", "Dave!", "--config", config, cwd=tmp_path)
    assert bad.returncode == 2 and "member name 'Dave!'" in " ".join(bad.stderr.split())
    paid = corec("pool", "contribute", "dave", "250", "--config", config, cwd=tmp_path)
    assert paid.returncode == 0, paid.stderr

    listed = corec("members", "list", "--json", "--config", config, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [
        {"member": "dave", "reinvest": False, "units": "250", "equity_usd": "250.00"}
    ]
