"""The routing tree: which receivers an alert goes to, and how it is grouped there.

Semantics are Prometheus Alertmanager's ``route`` block
(https://prometheus.io/docs/alerting/latest/configuration/#route): an alert enters at the
root and descends depth-first into the first child whose matchers all match; with
``continue: true`` on that child, matching goes on with the later siblings. The deepest
matching routes are the alert's *leaves* (a node whose children all fail to match is
itself the leaf). Unset ``receiver``, ``group_by``, ``group_wait_s``,
``group_interval_s`` and ``repeat_interval_s`` inherit from the parent; at the root they
default to Alertmanager's defaults (group by nothing, 30 s, 5 min, 4 h).

No I/O; the tree is immutable once built.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from corec.core.clock import NS_PER_S
from corec.plugins.alert_manager.config import RouteConfig
from corec.plugins.alert_manager.types import Matcher

GROUP_BY_ALL = "..."
"""``group_by: ["..."]``: every label (with the reserved ones) forms the group."""

DEFAULT_GROUP_WAIT_S = 30.0
DEFAULT_GROUP_INTERVAL_S = 300.0
DEFAULT_REPEAT_INTERVAL_S = 14_400.0


def _ns(seconds: float) -> int:
    return round(seconds * NS_PER_S)


@dataclass(frozen=True, slots=True, eq=False)
class Route:
    """One node of the routing tree, with its inherited settings resolved.

    Fields:
        route_id: the node's path from the root, stable across restarts while the
            configuration is unchanged: ``"0"`` is the root, ``"0.1"`` its second child,
            ``"0.1.0"`` that child's first child. It prefixes group keys.
        receiver: the receiver's name (``log`` or one of ``receivers``).
        matchers: all must match for the alert to enter this node (empty: everything).
        group_by: labels whose values form a group (empty: one group per route);
            ignored when ``group_by_all``.
        group_by_all: ``group_by: ["..."]``: group by every label.
        group_wait_ns, group_interval_ns, repeat_interval_ns: the group timers in ns.
        continue_: after matching, keep trying the later siblings.
        routes: children, in configuration order.
    """

    route_id: str
    receiver: str
    matchers: tuple[Matcher, ...]
    group_by: tuple[str, ...]
    group_by_all: bool
    group_wait_ns: int
    group_interval_ns: int
    repeat_interval_ns: int
    continue_: bool
    routes: tuple[Route, ...]

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The leaf routes ``labels`` go to, in tree order (depth-first).

        ``labels`` are the alert's labels plus the reserved ``alertname``, ``severity``
        and ``source`` (:meth:`AlertInstance.match_labels`). Returns ``[]`` only when
        this node's own matchers fail (never at the root, which has none).
        """
        for matcher in self.matchers:
            if not matcher.matches(labels):
                return []
        leaves: list[Route] = []
        for child in self.routes:
            found = child.match(labels)
            if found:
                leaves.extend(found)
                if not child.continue_:
                    break
        return leaves or [self]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The values of this route's ``group_by`` labels in ``labels`` (labels the alert
        lacks are left out, as in Alertmanager); every label when ``group_by_all``."""
        if self.group_by_all:
            return dict(sorted(labels.items()))
        return {name: labels[name] for name in self.group_by if name in labels}

    def group_key(self, group_labels: Mapping[str, str]) -> str:
        """``route_id`` + the group labels, e.g. ``0.1:{alertname="stale_data"}``."""
        inner = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(group_labels.items()))
        return f"{self.route_id}:{{{inner}}}"

    def walk(self) -> list[Route]:
        """This node and all its descendants, depth-first."""
        out = [self]
        for child in self.routes:
            out.extend(child.walk())
        return out


def build_route(config: RouteConfig) -> Route:
    """The immutable tree for ``config`` (the ``route`` section).

    Raises:
        ValueError: the root has no ``receiver``, the root has ``matchers`` (it must
            match every alert, as in Alertmanager), or a ``group_by`` mixes ``...`` with
            label names.
    """
    if config.receiver is None:
        raise ValueError("route.receiver: the root route needs a receiver")
    if config.matchers:
        raise ValueError("route.matchers: the root route matches every alert; it can't have any")
    root_group_by = config.group_by if config.group_by is not None else []
    return _build(
        config,
        route_id="0",
        receiver=config.receiver,
        group_by=root_group_by,
        group_wait_s=_or(config.group_wait_s, DEFAULT_GROUP_WAIT_S),
        group_interval_s=_or(config.group_interval_s, DEFAULT_GROUP_INTERVAL_S),
        repeat_interval_s=_or(config.repeat_interval_s, DEFAULT_REPEAT_INTERVAL_S),
    )


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _build(
    config: RouteConfig,
    *,
    route_id: str,
    receiver: str,
    group_by: list[str],
    group_wait_s: float,
    group_interval_s: float,
    repeat_interval_s: float,
) -> Route:
    receiver = config.receiver or receiver
    group_by = config.group_by if config.group_by is not None else group_by
    group_wait_s = _or(config.group_wait_s, group_wait_s)
    group_interval_s = _or(config.group_interval_s, group_interval_s)
    repeat_interval_s = _or(config.repeat_interval_s, repeat_interval_s)
    children = tuple(
        _build(
            child,
            route_id=f"{route_id}.{i}",
            receiver=receiver,
            group_by=group_by,
            group_wait_s=group_wait_s,
            group_interval_s=group_interval_s,
            repeat_interval_s=repeat_interval_s,
        )
        for i, child in enumerate(config.routes)
    )
    group_by_all = GROUP_BY_ALL in group_by
    if group_by_all and len(group_by) > 1:
        raise ValueError(
            f"route {route_id}: group_by {group_by}: '...' (every label) can't be combined "
            "with other labels"
        )
    return Route(
        route_id=route_id,
        receiver=receiver,
        matchers=config.parsed_matchers(),
        group_by=() if group_by_all else tuple(dict.fromkeys(group_by)),
        group_by_all=group_by_all,
        group_wait_ns=_ns(group_wait_s),
        group_interval_ns=_ns(group_interval_s),
        repeat_interval_ns=_ns(repeat_interval_s),
        continue_=config.continue_,
        routes=children,
    )
