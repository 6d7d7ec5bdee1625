"""Structured logs: JSON lines in the file, readable console, secrets masked everywhere."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from corec.core import channels
from corec.core.bus import MemoryBus
from corec.core.logging import close_logging, configure_logging, redact_secrets

from .bus_contract import ticker_event


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back afterwards."""
    saved = structlog.get_config()
    root = logging.getLogger()
    root_level = root.level
    noisy = {name: logging.getLogger(name).level for name in ("aiosqlite", "asyncio", "alembic")}
    try:
        yield
    finally:
        close_logging()
        structlog.configure(**saved)
        root.setLevel(root_level)
        for name, level in noisy.items():
            logging.getLogger(name).setLevel(level)


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_file_gets_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "corec.log"
    configure_logging(level="INFO", console_level="CRITICAL", file=path)
    log = structlog.get_logger("corec.test")
    log.info("order_placed", symbol="BTC/USDT", quantity="0.12345678")
    log.debug("too_detailed")
    log.warning("stale_data", age_s=400)
    close_logging()

    lines = read_lines(path)
    assert [line["event"] for line in lines] == ["order_placed", "stale_data"]
    first = lines[0]
    assert first["level"] == "info"
    assert first["logger"] == "corec.test"
    assert first["symbol"] == "BTC/USDT"
    assert first["quantity"] == "0.12345678"
    stamp = datetime.fromisoformat(first["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0
    assert lines[1]["level"] == "warning"
    assert lines[1]["age_s"] == 400


def test_secrets_are_masked_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "corec.log"
    configure_logging(level="DEBUG", console_level="CRITICAL", file=path)
    structlog.get_logger("corec.exchange_sync").info(
        "connecting",
        exchange="binance",
        password="hunter2",
        api_secret="sk-very-secret",
        token="tg-123:abc",
        api_key="AKIA123",
        smtp_password="p@ss",
        discord_webhook="https://discord.com/api/webhooks/1/x",
        passphrase="okx-phrase",
    )
    close_logging()
    (line,) = read_lines(path)
    assert line["exchange"] == "binance"
    for key in (
        "password",
        "api_secret",
        "token",
        "api_key",
        "smtp_password",
        "discord_webhook",
        "passphrase",
    ):
        assert line[key] == "***", key
    text = path.read_text(encoding="utf-8")
    for secret in ("hunter2", "sk-very-secret", "tg-123", "AKIA123", "p@ss", "webhooks/1"):
        assert secret not in text


def test_secrets_are_masked_on_the_console(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", console_level="INFO", file=None)
    structlog.get_logger("corec.alert_manager").info("smtp_login", user="corec", password="hunter2")
    structlog.get_logger("corec.alert_manager").debug("below_console_level")
    err = capsys.readouterr().err
    assert "smtp_login" in err
    assert "user=corec" in err
    assert "password=***" in err
    assert "hunter2" not in err
    assert "below_console_level" not in err


def test_console_level_is_separate_from_file_level(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "corec.log"
    configure_logging(level="DEBUG", console_level="WARNING", file=path)
    log = structlog.get_logger("corec.test")
    log.debug("detail_for_file")
    log.error("broken_for_both")
    close_logging()
    err = capsys.readouterr().err
    assert "detail_for_file" not in err
    assert "broken_for_both" in err
    assert [line["event"] for line in read_lines(path)] == ["detail_for_file", "broken_for_both"]


def test_stdlib_records_are_json_too(tmp_path: Path) -> None:
    path = tmp_path / "corec.log"
    configure_logging(level="INFO", console_level="CRITICAL", file=path)
    logging.getLogger("corec.legacy").warning("plain %s record", "stdlib")
    logging.getLogger("alembic").info("chatter stays out")
    close_logging()
    (line,) = read_lines(path)
    assert line["event"] == "plain stdlib record"
    assert line["level"] == "warning"
    assert line["logger"] == "corec.legacy"
    assert "timestamp" in line


def test_exceptions_are_written_with_their_traceback(tmp_path: Path) -> None:
    path = tmp_path / "corec.log"
    configure_logging(level="INFO", console_level="CRITICAL", file=path)
    try:
        raise ValueError("bid above ask")
    except ValueError:
        structlog.get_logger("corec.test").exception("tick_rejected")
    close_logging()
    (line,) = read_lines(path)
    assert line["event"] == "tick_rejected"
    assert line["level"] == "error"
    assert "ValueError: bid above ask" in line["exception"]


async def test_module_loggers_created_before_configuration_follow_it(tmp_path: Path) -> None:
    path = tmp_path / "corec.log"
    configure_logging(level="INFO", console_level="CRITICAL", file=path)
    bus = MemoryBus()

    def broken(event: Any) -> None:
        raise KeyError("BTC/USDT")

    bus.subscribe(channels.EXCHANGE_DATA, broken, group="market_monitor")
    await bus.publish(ticker_event(1))
    close_logging()
    lines = [line for line in read_lines(path) if line["event"] == "handler_failed"]
    assert len(lines) == 1
    assert lines[0]["logger"] == "corec.bus"
    assert lines[0]["handler"] == "market_monitor"
    assert lines[0]["channel"] == "exchange_data"
    assert lines[0]["error"] == "KeyError: 'BTC/USDT'"


def test_configuring_twice_does_not_duplicate_lines(tmp_path: Path) -> None:
    path = tmp_path / "corec.log"
    configure_logging(level="INFO", console_level="CRITICAL", file=path)
    configure_logging(level="INFO", console_level="CRITICAL", file=path)
    structlog.get_logger("corec.test").info("once")
    close_logging()
    assert [line["event"] for line in read_lines(path)] == ["once"]
    assert not [h for h in logging.getLogger().handlers if getattr(h, "_corec", False)]


def test_redact_secrets_processor() -> None:
    event = {
        "event": "x",
        "API_KEY": "k",
        "Webhook_URL": "https://hooks",
        "apikey": "k2",
        "client_secret": "s",
        "symbol": "BTC/USDT",
        "amount_usd": "100",
    }
    assert redact_secrets(None, "info", event) == {
        "event": "x",
        "API_KEY": "***",
        "Webhook_URL": "***",
        "apikey": "***",
        "client_secret": "***",
        "symbol": "BTC/USDT",
        "amount_usd": "100",
    }
