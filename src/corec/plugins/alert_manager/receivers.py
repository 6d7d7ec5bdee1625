"""Receivers' Apprise URLs, resolved from the environment or secret files (never the YAML).

A :class:`~corec.plugins.alert_manager.config.ReceiverConfig` names *where* a receiver's
URLs live: an environment variable (``urls_env``: URLs separated by whitespace, or by
commas before the next ``scheme://``) and/or a secret file (``urls_file``: one URL per
line, blank lines and lines starting with ``#`` ignored). :func:`resolve_receivers`
reads them, checks every URL with Apprise (parsing only: nothing is sent) and returns
one :class:`Receiver` per config.

Secrets: a :class:`Receiver` never shows its URLs in ``repr`` or errors; logs name a URL
by :func:`redact` (``scheme://host`` when the host is a host name, ``scheme://***``
otherwise, since for ``tgram://`` or ``discord://`` the "host" is a token). The
credentials and token-like parts of every URL are registered with
:func:`corec.core.logging.register_secret`, so they are masked in any log line, and
:meth:`Receiver.scrub` removes them from error texts before those are stored or
published.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from corec.core.errors import ConfigError
from corec.core.logging import mask_secrets, register_secret
from corec.plugins.alert_manager.config import LOG_RECEIVER, ReceiverConfig

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SPLIT_RE = re.compile(r"\s+|,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")
_HOST_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?(\[[^\]]*\]|[^/:?#]*)")
_HOSTNAME_RE = re.compile(
    r"^(localhost|\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]|([A-Za-z0-9-]+\.)+[A-Za-z]{2,63})$"
)
_CREDENTIALS_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s/@]+@")
_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_MIN_TOKEN_CHARS = 6


def apprise_module() -> Any:
    """The ``apprise`` module with every plugin loaded.

    Apprise loads its plugins on first use; one of them imports the deprecated
    ``imghdr`` (a ``DeprecationWarning`` on Python 3.11+, an error under
    ``-W error``). Loading them here, once, with that warning silenced keeps it out of
    the node's (and the tests') warnings.
    """
    import apprise
    from apprise.manager_plugins import NotificationManager

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        NotificationManager().load_modules()
    return apprise


def redact(url: str) -> str:
    """``url`` reduced to what a log may show: ``scheme://host`` when the host is a host
    name or an IP address (``mailtos://smtp.example.org``), else ``scheme://***``
    (``tgram://***``: Telegram's and Discord's "host" is a token or an id).
    Text that is not a URL becomes ``***``."""
    scheme = _SCHEME_RE.match(url.strip())
    if scheme is None:
        return "***"
    host = _HOST_RE.match(url.strip())
    name = host.group(1) if host else ""
    if name and _HOSTNAME_RE.match(name):
        return f"{scheme.group(1).lower()}://{name.lower()}"
    return f"{scheme.group(1).lower()}://***"


def strip_credentials(text: str) -> str:
    """``text`` with the ``user:password@`` part of any URL in it replaced by ``***@``."""
    return _CREDENTIALS_RE.sub(r"\1***@", text)


def url_secrets(url: str) -> set[str]:
    """The parts of ``url`` that must never appear in a log, message or row: the whole
    URL, its user and password, a host that is not a host name (a token), and every
    path segment or query value of 6+ characters that contains a digit (webhook ids and
    tokens, bot tokens, API keys). A heuristic that errs on the side of masking."""
    url = url.strip()
    found = {url}
    m = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)([^?#]*)(?:\?([^#]*))?", url)
    if m is None:
        return found
    netloc, path, query = m.group(1), m.group(2), m.group(3) or ""
    userinfo, _, hostport = netloc.rpartition("@")
    if userinfo:
        user, _, password = userinfo.partition(":")
        found.update({user, unquote(user), password, unquote(password)})
    if hostport and not _HOSTNAME_RE.match(
        hostport.split(":")[0] if "[" not in hostport else hostport
    ):
        found.update({hostport, unquote(hostport)})
    candidates = [unquote(s) for s in path.split("/")] + [v for _, v in parse_qsl(query)]
    for part in candidates:
        if len(part) >= _MIN_TOKEN_CHARS and any(c.isdigit() for c in part) and "@" not in part:
            found.add(part)
    return {s for s in found if len(s) >= _MIN_TOKEN_CHARS}


@dataclass(frozen=True)
class Receiver:
    """A resolved receiver.

    Fields:
        name: the receiver's name (routes refer to it).
        urls: its Apprise URLs, each checked by Apprise. Secret: never log them; use
            :attr:`redacted`.
        send_resolved: also notify resolutions (from the config).
        sources: where the URLs came from (``environment variable X``, ``file Y``),
            for messages.
    """

    name: str
    urls: tuple[str, ...] = field(repr=False)
    send_resolved: bool = True
    sources: tuple[str, ...] = ()
    _secrets: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @property
    def redacted(self) -> tuple[str, ...]:
        """The URLs as :func:`redact` shows them."""
        return tuple(redact(u) for u in self.urls)

    def scrub(self, text: str) -> str:
        """``text`` without any of this receiver's URL secrets, URL credentials or
        registered secrets (for error messages that are stored and published)."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, "***")
        return mask_secrets(strip_credentials(text))

    @classmethod
    def of(
        cls,
        name: str,
        urls: Sequence[str],
        *,
        send_resolved: bool = True,
        sources: Sequence[str] = (),
    ) -> Receiver:
        """A receiver with ``urls`` (already checked), registering their secrets with
        the log masking of :mod:`corec.core.logging`."""
        secrets: set[str] = set()
        for url in urls:
            secrets |= url_secrets(url)
        for secret in secrets:
            register_secret(secret)
        return cls(name, tuple(urls), send_resolved, tuple(sources), frozenset(secrets))


def split_urls(text: str) -> list[str]:
    """Apprise URLs in ``text``: separated by whitespace, or by a comma right before the
    next ``scheme://`` (a comma inside a URL, as in ``mailto://...?to=a@x,b@y``, stays)."""
    return [part.strip() for part in _SPLIT_RE.split(text) if part and part.strip()]


def read_urls_file(path: Path) -> list[str]:
    """The URLs in a secret file: one per line; blank lines and ``#`` lines ignored.

    Raises:
        OSError: the file cannot be read (missing, a directory, no permission).
        UnicodeDecodeError: the file is not UTF-8 text.
    """
    urls = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            urls.append(line)
    return urls


def check_url(url: str) -> str | None:
    """``None`` when Apprise can build a service from ``url`` (nothing is sent), else
    what is wrong, without the URL's secrets."""
    apprise = apprise_module()
    scheme = _SCHEME_RE.match(url)
    if scheme is None:
        return "not a URL (expected scheme://...)"
    asset = apprise.AppriseAsset(storage_mode="memory")
    with apprise.LogCapture(level=logging.WARNING) as captured:
        instance = apprise.Apprise.instantiate(url, asset=asset)
    if instance is not None:
        return None
    said = " ".join(line.strip() for line in captured.getvalue().splitlines() if line.strip())
    secrets = url_secrets(url)
    for secret in sorted(secrets, key=len, reverse=True):
        said = said.replace(secret, "***")
    said = _URL_RE.sub(lambda m: redact(m.group(0)), said)
    # LogCapture's lines are "time - LEVEL - message": keep the messages
    said = re.sub(r"\S+ \S+ - [A-Z]+ - ", "", said).strip()
    return f"Apprise cannot use it{': ' + said if said else ''}"


def resolve_receiver(config: ReceiverConfig, env: Mapping[str, str] | None = None) -> Receiver:
    """The :class:`Receiver` of ``config``: URLs from ``urls_env`` and/or ``urls_file``
    (both when both are set, in that order, duplicates dropped), each checked by Apprise.

    Args:
        config: the receiver's section.
        env: the environment to read (default ``os.environ``).

    Raises:
        ConfigError: the variable is unset or empty, the file is missing, unreadable or
            has no URL, or Apprise cannot parse a URL. Every problem is listed with the
            receiver, the variable or file, and what is wrong; URLs appear redacted.
    """
    env = os.environ if env is None else env
    where = f"receivers[{config.name}]"
    problems: list[str] = []
    urls: list[tuple[str, str]] = []  # (url, "where it came from")
    sources: list[str] = []
    if config.urls_env is not None:
        source = f"environment variable {config.urls_env}"
        sources.append(source)
        value = env.get(config.urls_env)
        if value is None:
            problems.append(
                f"{where}.urls_env: {source} is not set (it should hold the Apprise URLs)"
            )
        elif not value.strip():
            problems.append(
                f"{where}.urls_env: {source} is empty (it should hold the Apprise URLs)"
            )
        else:
            urls.extend((u, source) for u in split_urls(value))
    if config.urls_file is not None:
        source = f"file {config.urls_file}"
        sources.append(source)
        try:
            found = read_urls_file(config.urls_file)
        except FileNotFoundError:
            problems.append(f"{where}.urls_file: {source} does not exist")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(
                f"{where}.urls_file: {source} cannot be read: {type(exc).__name__}: "
                f"{getattr(exc, 'strerror', None) or exc}"
            )
        else:
            if not found:
                problems.append(f"{where}.urls_file: {source} has no URL (only blank or # lines)")
            urls.extend((u, source) for u in found)
    seen: list[str] = []
    for index, (url, source) in enumerate(urls, start=1):
        if url in seen:
            continue
        reason = check_url(url)
        if reason is not None:
            problems.append(f"{where}: URL #{index} ({redact(url)}) from {source}: {reason}")
        seen.append(url)
    if problems:
        raise ConfigError("alert_manager", problems)
    return Receiver.of(
        config.name, seen, send_resolved=config.send_resolved, sources=tuple(sources)
    )


def resolve_receivers(
    configs: Sequence[ReceiverConfig], env: Mapping[str, str] | None = None
) -> dict[str, Receiver]:
    """Every configured receiver by name (the built-in ``log`` receiver is not among
    them: it needs no URL).

    Raises:
        ConfigError: listing the problems of every receiver at once (see
            :func:`resolve_receiver`).
    """
    resolved: dict[str, Receiver] = {}
    problems: list[str] = []
    for config in configs:
        if config.name == LOG_RECEIVER:  # the config model refuses it; be explicit anyway
            problems.append(f"receivers[{LOG_RECEIVER}]: the name is reserved for the log")
            continue
        try:
            resolved[config.name] = resolve_receiver(config, env)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError("alert_manager", problems)
    return resolved
