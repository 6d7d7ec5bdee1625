"""Structured logs (structlog): JSON lines to a file, readable lines to stderr.

Every record carries ``timestamp`` (UTC ISO-8601), ``level``, ``logger`` and ``event``
plus the fields bound by the caller. Values under keys that look like secrets
(``password``, ``secret``, ``token``, ``api_key``, ``passphrase``, ``webhook``), at any
depth of nested dicts and lists, are replaced by ``***`` before any output. Secret
values registered with :func:`register_secret` (exchange API keys, webhook URLs) are
also masked wherever they appear inside any string value, such as an error message
that quotes a request.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any

import structlog

_SECRET_MARKERS = ("password", "secret", "token", "api_key", "apikey", "passphrase", "webhook")


_SECRET_VALUES: set[str] = set()
_MIN_SECRET_CHARS = 6


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears in a logged string from now on.

    Values shorter than 6 characters are ignored (masking them would garble logs
    without protecting anything).
    """
    if value and len(value) >= _MIN_SECRET_CHARS:
        _SECRET_VALUES.add(value)


def mask_secrets(text: str) -> str:
    """``text`` with every value registered by :func:`register_secret` replaced by ``***``
    (for error messages that go into events, alerts and tables as well as logs)."""
    return _mask_values(text) if _SECRET_VALUES else text


def _mask_values(text: str) -> str:
    for secret in _SECRET_VALUES:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def _is_secret(key: Any) -> bool:
    lowered = str(key).lower()
    return any(marker in lowered for marker in _SECRET_MARKERS)


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "***" if _is_secret(k) else _redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_redact(v) for v in value)
    if isinstance(value, str) and _SECRET_VALUES:
        return _mask_values(value)
    return value


_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@/\s]+@")


def _is_secret_setting(key: Any) -> bool:
    # A setting holds a secret when its name ends with a marker (``smtp_password``,
    # ``api_key``); ``access_token_ttl_s`` or ``min_password_chars`` only describe one.
    lowered = str(key).lower()
    return any(lowered.endswith(marker) for marker in _SECRET_MARKERS)


def redact(value: Any) -> Any:
    """A copy of ``value`` (dicts, lists, strings) fit to show a person: fields whose
    name ends like a secret (password, secret, token, api_key, passphrase, webhook) become
    ``***``, registered secret values are masked, and URL passwords
    (``postgresql://user:pw@host``) become ``***``. Used for ``GET /api/v1/system/config``."""
    if isinstance(value, dict):
        return {k: "***" if _is_secret_setting(k) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\g<head>:***@", mask_secrets(value))
    return value


def redact_secrets(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: mask values whose key names a secret, at any depth."""
    for key, value in list(event_dict.items()):
        if _is_secret(key):
            event_dict[key] = "***"
        elif isinstance(value, (dict, list, tuple, str)):
            event_dict[key] = _redact(value)
        elif _SECRET_VALUES and isinstance(value, BaseException):
            event_dict[key] = _mask_values(f"{type(value).__name__}: {value}")
    return event_dict


def mask_rendered(_logger: Any, _method: str, rendered: Any) -> Any:
    """Last structlog processor: mask registered secret values in the rendered line
    (tracebacks included)."""
    if _SECRET_VALUES and isinstance(rendered, str):
        return _mask_values(rendered)
    return rendered


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time, so a Rich progress bar that
    redirects stderr prints log lines above itself instead of through the bar."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    redact_secrets,
]


def configure_logging(
    *,
    level: str = "INFO",
    console_level: str = "WARNING",
    file: Path | None = None,
) -> None:
    """Route structlog through the standard library to stderr and, if given, ``file``.

    Args:
        level: lowest level written to ``file``.
        console_level: lowest level written to stderr.
        file: JSON-lines log file (its folder is created); ``None`` for no file.
    """
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_corec", False):
            root.removeHandler(handler)
            handler.close()

    console = _StderrHandler()
    console.setLevel(console_level)
    console.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.dev.ConsoleRenderer(colors=False),
                mask_rendered,
            ],
            foreign_pre_chain=_SHARED,
        )
    )
    console._corec = True  # type: ignore[attr-defined]
    root.addHandler(console)
    lowest = logging.getLevelName(console_level)

    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(file, encoding="utf-8")
        to_file.setLevel(level)
        to_file.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer(),
                    mask_rendered,
                ],
                foreign_pre_chain=_SHARED,
            )
        )
        to_file._corec = True  # type: ignore[attr-defined]
        root.addHandler(to_file)
        lowest = min(lowest, logging.getLevelName(level))
    root.setLevel(lowest)
    # third-party chatter stays at WARNING
    for noisy in ("aiosqlite", "asyncio", "alembic", "sqlalchemy", "ccxt"):
        logging.getLogger(noisy).setLevel(max(lowest, logging.WARNING))


def close_logging() -> None:
    """Flush and remove the handlers :func:`configure_logging` added."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_corec", False):
            root.removeHandler(handler)
            handler.close()
