"""Exchange API credentials, read from the environment or from secret files.

Credentials never live in YAML, events, tables or logs. For an exchange whose
credentials prefix is ``COREC_KUCOIN``:

- ``COREC_KUCOIN_API_KEY``, ``COREC_KUCOIN_API_SECRET``, ``COREC_KUCOIN_API_PASSPHRASE``
  hold the values, or
- ``COREC_KUCOIN_API_KEY_FILE`` (etc.) names a file holding the value (Docker and
  Kubernetes secrets, systemd credentials); surrounding whitespace is stripped.

The passphrase is needed by KuCoin and OKX (CCXT's ``password``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from corec.core.errors import ConfigError

_FIELDS = ("API_KEY", "API_SECRET", "API_PASSPHRASE")


@dataclass(frozen=True, repr=False)
class Credentials:
    """An exchange account's API key, secret and optional passphrase.

    ``repr`` and ``str`` never show the values; :meth:`ccxt_config` gives them to CCXT.
    """

    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    passphrase: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        shown = "***" + self.api_key[-4:] if len(self.api_key) >= 12 else "***"
        return f"Credentials(api_key={shown}, secret=***, passphrase={'***' if self.passphrase else None})"

    __str__ = __repr__

    def ccxt_config(self) -> dict[str, str]:
        """The ``apiKey``/``secret``/``password`` entries of a CCXT exchange config."""
        config = {"apiKey": self.api_key, "secret": self.secret}
        if self.passphrase:
            config["password"] = self.passphrase
        return config

    def secrets(self) -> tuple[str, ...]:
        """Every secret value, for redaction."""
        return tuple(v for v in (self.api_key, self.secret, self.passphrase) if v)


def default_prefix(exchange: str) -> str:
    """``COREC_<EXCHANGE>``: ``binance`` → ``COREC_BINANCE``."""
    return f"COREC_{exchange.upper()}"


def load_credentials(prefix: str, environ: Mapping[str, str] | None = None) -> Credentials | None:
    """Credentials from ``<prefix>_API_KEY`` … or their ``_FILE`` variants.

    Returns:
        ``None`` when neither key nor secret is set (public data only).

    Raises:
        ConfigError: only one of key and secret is set, both a variable and its
            ``_FILE`` are set, or a ``_FILE`` cannot be read (the message names the
            variable and file, never a value).
    """
    env = os.environ if environ is None else environ
    values: dict[str, str | None] = {}
    for name in _FIELDS:
        var = f"{prefix}_{name}"
        direct, file_var = env.get(var), env.get(f"{var}_FILE")
        if direct and file_var:
            raise ConfigError("environment", [f"both {var} and {var}_FILE are set; keep one"])
        if file_var:
            try:
                values[name] = Path(file_var).read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise ConfigError(
                    "environment", [f"{var}_FILE: cannot read {file_var}: {exc.strerror or exc}"]
                ) from exc
        else:
            values[name] = direct or None
    key, secret = values["API_KEY"], values["API_SECRET"]
    if key is None and secret is None:
        return None
    if key is None or secret is None:
        missing = f"{prefix}_API_KEY" if key is None else f"{prefix}_API_SECRET"
        raise ConfigError(
            "environment", [f"{missing} is not set (the other half of the API credentials is)"]
        )
    return Credentials(api_key=key, secret=secret, passphrase=values["API_PASSPHRASE"])
