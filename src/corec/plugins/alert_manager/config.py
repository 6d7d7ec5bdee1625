"""alert_manager's configuration section (Prometheus Alertmanager's shape, in YAML).

Receivers name *where* their Apprise URLs come from (an environment variable or a secret
file), never the URLs: webhook tokens and SMTP passwords stay out of git.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from corec.core.config import FrozenModel
from corec.core.plugin import PluginConfig
from corec.plugins.alert_manager.rules import RuleError, load_rules
from corec.plugins.alert_manager.types import InhibitRule, Matcher

LOG_RECEIVER = "log"
"""The built-in receiver: writes the notification to the log. Always present; every
alert is also logged when received, whatever the routes say."""


def _parse_matchers(values: list[str], where: str) -> tuple[Matcher, ...]:
    out = []
    for i, text in enumerate(values):
        try:
            out.append(Matcher.parse(text))
        except ValueError as exc:
            raise ValueError(f"{where}[{i}]: {exc}") from exc
    return tuple(out)


class RouteConfig(FrozenModel):
    """A node of the routing tree (Alertmanager's ``route``).

    An alert enters at the root and descends into the first child whose ``matchers`` all
    match (and on into the next matching siblings too when that child has
    ``continue: true``); the deepest matching routes send it to their receivers. Unset
    fields inherit from the parent.

    Fields:
        receiver: a name from ``receivers`` or ``log``.
        matchers: ``LABEL=VALUE``, ``!=``, ``=~REGEX``, ``!~REGEX`` over the alert's labels
            plus ``alertname``, ``severity`` and ``source``.
        group_by: labels whose values form a group (``[...]`` groups everything).
        group_wait_s: wait this long before the first notification of a new group.
        group_interval_s: wait this long before notifying a group again about changes.
        repeat_interval_s: re-notify an unchanged, still firing group after this long.
        continue_: (YAML ``continue``) keep matching later siblings.
        routes: children.
    """

    receiver: str | None = None
    matchers: list[str] = []
    group_by: list[str] | None = None
    group_wait_s: float | None = Field(default=None, ge=0)
    group_interval_s: float | None = Field(default=None, gt=0)
    repeat_interval_s: float | None = Field(default=None, gt=0)
    continue_: bool = Field(default=False, alias="continue")
    routes: list[RouteConfig] = []

    model_config = {"frozen": True, "extra": "forbid", "populate_by_name": True}

    @field_validator("matchers")
    @classmethod
    def _matchers_parse(cls, values: list[str]) -> list[str]:
        _parse_matchers(values, "matchers")
        return values

    def parsed_matchers(self) -> tuple[Matcher, ...]:
        """``matchers`` as :class:`Matcher` objects."""
        return _parse_matchers(self.matchers, "matchers")


class ReceiverConfig(FrozenModel):
    """A named destination: one or more Apprise URLs (``mailtos://``, ``discord://``,
    ``tgram://``, ``slack://``, ``json://``, SMS providers ...).

    Fields:
        name: referenced by routes; ``log`` is reserved.
        urls_env: an environment variable holding the URLs (separated by whitespace or
            commas), e.g. ``COREC_ALERTS_DISCORD_URLS``.
        urls_file: a secret file with one URL per line (``#`` comments allowed).
        send_resolved: also notify when alerts resolve.
    At least one of ``urls_env`` / ``urls_file``; the URLs themselves never go in YAML.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    urls_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    urls_file: Path | None = None
    send_resolved: bool = True

    @model_validator(mode="after")
    def _has_source(self) -> ReceiverConfig:
        if self.name == LOG_RECEIVER:
            raise ValueError(f"receiver name {LOG_RECEIVER!r} is built in")
        if self.urls_env is None and self.urls_file is None:
            raise ValueError(
                f"receiver {self.name}: set urls_env (an environment variable) or urls_file "
                "(a secret file) holding its Apprise URLs; URLs never go in the YAML"
            )
        return self


class InhibitRuleConfig(FrozenModel):
    """Alertmanager's inhibit rule: while a ``source_matchers`` alert fires, mute
    ``target_matchers`` alerts that share the ``equal`` labels' values."""

    source_matchers: list[str] = Field(min_length=1)
    target_matchers: list[str] = Field(min_length=1)
    equal: list[str] = []

    def rule(self) -> InhibitRule:
        """As the engine's :class:`InhibitRule`."""
        return InhibitRule(
            source_matchers=_parse_matchers(self.source_matchers, "source_matchers"),
            target_matchers=_parse_matchers(self.target_matchers, "target_matchers"),
            equal=tuple(self.equal),
        )

    @model_validator(mode="after")
    def _matchers_parse(self) -> InhibitRuleConfig:
        self.rule()
        return self


class DeliveryConfig(FrozenModel):
    """How the outbox delivers (per receiver).

    Fields:
        timeout_s: one send's time limit.
        max_attempts: attempts before a notification is given up (``failed``).
        backoff_initial_s, backoff_max_s: exponential backoff between attempts, with
            jitter; a 429's ``retry_after`` is honoured when longer.
        breaker_failures: consecutive failures that open the receiver's breaker.
        breaker_reset_s: how long it stays open before one probe.
        poll_interval_s: how often the outbox looks for due entries when idle.
    """

    timeout_s: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=8, ge=1)
    backoff_initial_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=300.0, gt=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_s: float = Field(default=60.0, gt=0)
    poll_interval_s: float = Field(default=1.0, gt=0)


DEFAULT_INHIBIT_RULES = [
    InhibitRuleConfig(
        source_matchers=["alertname=mode_changed", "mode=emergency"],
        target_matchers=["plugin=trading_execution", "severity=~medium|low"],
    ),
    InhibitRuleConfig(  # an exchange that is down explains its stale prices
        source_matchers=["alertname=breaker_open"],
        target_matchers=["alertname=stale_data"],
        equal=["exchange"],
    ),
]


class AlertManagerConfig(PluginConfig):
    """alert_manager settings.

    Fields:
        shipped_rules: load the rules shipped with CoreC (``rules/default.yaml``).
        rules_files: more YAML rule files.
        params: values for the rules' named thresholds (``large_withdrawal_usd: 2500``);
            a name no rule file declares is an error at start.
        route: the routing tree's root (default: everything to ``log``).
        receivers: the named Apprise destinations.
        inhibit_rules: default: emergency mode mutes medium/low trading alerts; an open
            breaker mutes stale-data alerts of its exchange.
        delivery: outbox retries, backoff and breakers.
        fallback_file: where a critical alert goes when every external receiver failed
            (relative paths are under the node's data_dir).
        resolve_timeout_s: an alert that never says it resolved (a trade's loss, a large
            withdrawal) leaves the active set this long after it was last received:
            silently, without a resolved notification; it is a new firing if it comes
            back. (Alertmanager's ``resolve_timeout``.)
    """

    shipped_rules: bool = True
    rules_files: list[Path] = []
    params: dict[str, Decimal] = {}
    route: RouteConfig = RouteConfig(
        receiver=LOG_RECEIVER,
        group_by=["alertname"],
        group_wait_s=30.0,
        group_interval_s=300.0,
        repeat_interval_s=14400.0,
    )
    receivers: list[ReceiverConfig] = []
    inhibit_rules: list[InhibitRuleConfig] = DEFAULT_INHIBIT_RULES
    delivery: DeliveryConfig = DeliveryConfig()
    fallback_file: Path = Path("alerts-undelivered.log")
    resolve_timeout_s: float = Field(default=300.0, gt=0)

    @model_validator(mode="after")
    def _routes_name_receivers(self) -> AlertManagerConfig:
        names = [r.name for r in self.receivers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"receivers: duplicate names {duplicates}")
        known = {*names, LOG_RECEIVER}
        if self.route.receiver is None:
            raise ValueError("route.receiver: the root route needs a receiver")

        def check(route: RouteConfig, path: str) -> None:
            if route.receiver is not None and route.receiver not in known:
                raise ValueError(
                    f"{path}.receiver: unknown receiver {route.receiver!r} "
                    f"(known: {', '.join(sorted(known))})"
                )
            for i, child in enumerate(route.routes):
                check(child, f"{path}.routes[{i}]")

        check(self.route, "route")
        return self

    @model_validator(mode="after")
    def _rules_load(self) -> AlertManagerConfig:
        """Rule files are checked with the configuration: a bad one stops ``corec run``
        before anything starts, naming the file, the line and the reason."""
        try:
            load_rules(self.rules_files, shipped=self.shipped_rules, params=dict(self.params))
        except RuleError as exc:
            raise ValueError(f"rules: {exc}") from exc
        return self
