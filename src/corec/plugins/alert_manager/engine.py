"""The alert engine: Prometheus Alertmanager's dispatcher on a controllable clock (no I/O).

What it does, in Alertmanager's words
(https://prometheus.io/docs/alerting/latest/alertmanager/ and
https://prometheus.io/docs/alerting/latest/configuration/):

- **Identity and deduplication.** An alert is its name + labels (its *fingerprint*,
  :func:`~corec.plugins.alert_manager.types.fingerprint`). While a fingerprint fires,
  receiving it again is a *duplicate*: counted (``occurrences``), ``updated_ts_ns``,
  ``message``, ``severity`` and ``source`` move to the latest, nothing is notified
  because of it. After it resolved or expired, the next receipt is a new firing with a
  new ``alert_id``.
- **Routing and grouping.** A new firing is routed once (its labels plus ``alertname``,
  ``severity``, ``source``) to the leaves of the :class:`~.routing.Route` tree; on each
  leaf it joins the group ``route_id + values of group_by``. Group membership is fixed
  for the firing: a duplicate with another severity updates the alert, not its groups.
- **Group timers** (Alertmanager's aggregation group). A group is evaluated ("ticks")
  first at its creation + ``group_wait``, then every ``group_interval`` after each tick,
  as long as it holds alerts; an empty group is dropped at its tick. At a tick the
  group's unmuted firing alerts and unmuted resolved alerts are compared with what the
  receiver was last told (Alertmanager's notification log, ``DedupStage``):

  * never notified: notify if something fires;
  * a firing alert the receiver was not told about (a new alert, or one no longer
    muted): notify (a *change*);
  * nothing fires any more but the receiver was told about firing alerts: notify the
    resolved ones if the receiver has ``send_resolved``, else just forget them;
  * alerts the receiver was told about have resolved and it has ``send_resolved``:
    notify (a change);
  * otherwise, ``repeat_interval`` after the last notification: re-notify the firing
    alerts (a *repeat*).

  So a change is notified at the first tick after it, i.e. at most ``group_interval``
  after the previous notification; a repeat at the first tick at or after
  ``last notification + repeat_interval`` (exactly then when ``repeat_interval`` is a
  multiple of ``group_interval``, as with the defaults).
- **What a notification holds.** Every firing alert of the group that is not muted at
  the tick, and (``send_resolved`` only) the alerts resolved since the last tick that
  the receiver had been told were firing (Alertmanager would also send resolutions of
  alerts the receiver never saw fire; that is noise, so it is left out). Resolved
  alerts leave the group at the tick whether or not they were sent. If everything is
  muted, nothing is sent and the receiver's record is untouched (the muted alerts are
  notified as a change once unmuted), but the timers go on.
- **Acknowledgements** (CoreC's addition): an acked alert is still part of change
  notifications but never of repeats; a group whose unmuted firing alerts are all acked
  does not repeat. An ack lasts for the firing; a new firing needs a new ack.
- **Silences** mute matching alerts inside their window; **inhibition rules** mute a
  target while another firing alert matches the rule's source matchers with equal
  ``equal`` labels (absent = empty). Inhibition sources count whether or not they are
  themselves silenced (as in Alertmanager); an alert never inhibits itself. Sources
  are indexed per rule by their ``equal`` values, so a check costs O(rules), not
  O(active alerts).
- **resolve_timeout.** A firing alert not received for ``resolve_timeout_s`` leaves the
  active set silently (:meth:`AlertEngine.expire`): no resolved notification (unlike
  Alertmanager, which resolves it), and it is a new firing if it comes back.

Cost of :meth:`AlertEngine.receive`: a fingerprint, a few dict operations, the live
silences and the inhibition rules (plus, for a new firing, one walk down the route
tree). Nothing in it scans the active alerts.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from corec.core.clock import NS_PER_S
from corec.core.ids import new_id as _default_new_id
from corec.core.notices import Alert, Severity
from corec.plugins.alert_manager.routing import Route
from corec.plugins.alert_manager.types import (
    SEVERITY_RANK,
    AlertInstance,
    InhibitRule,
    Notification,
    Silence,
    fingerprint,
    matches_all,
)

ENDED_MEMORY = 10_000
"""How many ended firings the engine remembers, to tell "resolved"/"expired" from
"unknown" when one is acked."""


@dataclass(frozen=True, slots=True)
class Received:
    """What one :meth:`AlertEngine.receive` did.

    Exactly one of ``new_firing``, ``duplicate``, ``resolved``, ``ignored`` is true.

    Fields:
        instance: the alert after this receipt (``state="resolved"`` with
            ``ends_ts_ns`` set when it resolved); ``None`` when ``ignored``.
        new_firing: a new firing with a new ``alert_id``.
        duplicate: a repeat of an active firing (``occurrences`` + 1).
        resolved: a resolved alert that ended the active firing of its fingerprint.
        ignored: a resolved alert whose fingerprint was not firing (never seen, already
            resolved, or expired): nothing to do, nothing to store.
        muted_by: at receipt, ``"silence:<silence_id>"`` or
            ``"inhibited:<fingerprint of the source>"``; ``None`` when not muted.
    """

    instance: AlertInstance | None
    new_firing: bool = False
    duplicate: bool = False
    resolved: bool = False
    ignored: bool = False
    muted_by: str | None = None


@dataclass(slots=True, eq=False)
class _Group:
    """One aggregation group (route + group label values) and its notification log."""

    key: str
    route: Route
    labels: dict[str, str]
    firing: dict[str, None]  # fingerprints of firing members, in arrival order
    resolved: dict[str, AlertInstance]  # resolved since the last tick, by fingerprint
    notified: set[str] | None = None  # alert ids of the firing alerts last notified
    last_sent_ns: int | None = None
    next_ns: int = 0
    token: int = 0


def _top_severity(alerts: Sequence[AlertInstance]) -> Severity:
    return max((a.severity for a in alerts), key=SEVERITY_RANK.__getitem__)


class AlertEngine:
    """Deduplication, grouping, timers, resolution, inhibition, silences and acks.

    Pure logic: every time is an argument in UTC nanoseconds (the node clock), nothing
    is stored or sent here. The plugin calls :meth:`receive` for each alert,
    :meth:`flush` when :meth:`next_flush_ns` is due, :meth:`expire` when
    :meth:`next_expiry_ns` is due, and persists what they return.

    Args:
        route: the routing tree (:func:`~.routing.build_route`).
        inhibit_rules: Alertmanager's ``inhibit_rules``.
        resolve_timeout_s: a firing alert not received for this long expires.
        send_resolved: receiver name → whether it wants resolved alerts; a receiver not
            in the mapping (such as ``log``) gets them.
        new_id: id factory for ``alert_id`` and ``notification_id`` (UUIDv7 by default).
    """

    def __init__(
        self,
        *,
        route: Route,
        inhibit_rules: Sequence[InhibitRule],
        resolve_timeout_s: float,
        send_resolved: Mapping[str, bool],
        new_id: Callable[[], str] = _default_new_id,
    ) -> None:
        if resolve_timeout_s <= 0:
            raise ValueError(f"resolve_timeout_s must be > 0 (got {resolve_timeout_s})")
        self._route = route
        self._rules = tuple(inhibit_rules)
        self._resolve_timeout_ns = round(resolve_timeout_s * NS_PER_S)
        self._send_resolved = dict(send_resolved)
        self._new_id = new_id
        self._tokens = itertools.count(1)
        self._reset()

    def _reset(self) -> None:
        # fingerprint -> firing instance; ordered by last receipt (oldest first) for expire
        self._active: OrderedDict[str, AlertInstance] = OrderedDict()
        self._by_id: dict[str, str] = {}  # alert_id -> fingerprint (active only)
        self._groups_of: dict[str, tuple[str, ...]] = {}  # fingerprint -> group keys
        self._groups: dict[str, _Group] = {}
        self._heap: list[tuple[int, int, str]] = []  # (tick ns, token, group key)
        self._acks: dict[str, tuple[int, str]] = {}  # alert_id -> (ts_ns, by)
        self._silences: dict[str, Silence] = {}  # every known silence
        self._live_silences: dict[str, Silence] = {}  # those not yet ended
        # per rule: equal-label values -> fingerprints of firing sources
        self._sources: list[dict[tuple[str, ...], dict[str, None]]] = [{} for _ in self._rules]
        self._source_regs: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
        self._ended: OrderedDict[str, tuple[str, int]] = OrderedDict()  # alert_id -> how, when

    # -- receiving ---------------------------------------------------------------------

    def receive(self, alert: Alert, source: str, now_ns: int) -> Received:
        """Take one raw alert from ``source`` (``plugin@instance``) at ``now_ns``.

        A firing alert starts a new firing (new ``alert_id``, routed into its groups) or
        is a duplicate of the active one. A resolved alert ends the active firing of its
        fingerprint (``message`` from the resolving alert, severity kept) and queues it
        in its groups for a resolved notification; with nothing firing it is
        ``ignored``. See :class:`Received`.
        """
        fp = fingerprint(alert.name, alert.labels)
        current = self._active.get(fp)
        if alert.state == "resolved":
            if current is None:
                return Received(None, ignored=True)
            ended = AlertInstance(
                alert_id=current.alert_id,
                fingerprint=fp,
                name=current.name,
                severity=current.severity,
                message=alert.message,
                labels=current.labels,
                source=source,
                state="resolved",
                starts_ts_ns=current.starts_ts_ns,
                updated_ts_ns=now_ns,
                ends_ts_ns=now_ns,
                occurrences=current.occurrences,
                resolvable=current.resolvable,
            )
            self._leave(fp, current, "resolved", now_ns)
            for key in self._groups_of.pop(fp, ()):
                group = self._groups.get(key)
                if group is not None:
                    group.firing.pop(fp, None)
                    group.resolved[fp] = ended
            muted = self._mute_reason(ended.match_labels(), fp, now_ns)
            return Received(ended, resolved=True, muted_by=muted)

        if current is not None:
            inst = AlertInstance(
                alert_id=current.alert_id,
                fingerprint=fp,
                name=current.name,
                severity=alert.severity,
                message=alert.message,
                labels=current.labels,
                source=source,
                state="firing",
                starts_ts_ns=current.starts_ts_ns,
                updated_ts_ns=now_ns,
                occurrences=current.occurrences + 1,
                resolvable=current.resolvable or alert.resolvable,
            )
            self._active[fp] = inst
            self._active.move_to_end(fp)
            labels = inst.match_labels()
            if self._rules and (inst.severity != current.severity or source != current.source):
                self._unregister_source(fp)
                self._register_source(fp, labels)
            return Received(inst, duplicate=True, muted_by=self._mute_reason(labels, fp, now_ns))

        inst = AlertInstance(
            alert_id=self._new_id(),
            fingerprint=fp,
            name=alert.name,
            severity=alert.severity,
            message=alert.message,
            labels=dict(alert.labels),
            source=source,
            state="firing",
            starts_ts_ns=now_ns,
            updated_ts_ns=now_ns,
            resolvable=alert.resolvable,
        )
        labels = inst.match_labels()
        self._enter(inst, labels, now_ns)
        return Received(inst, new_firing=True, muted_by=self._mute_reason(labels, fp, now_ns))

    def _enter(self, inst: AlertInstance, labels: Mapping[str, str], created_ns: int) -> None:
        """Make ``inst`` active: index it, register it as an inhibition source, route it
        into its groups (a new group's first tick is ``created_ns + group_wait``)."""
        fp = inst.fingerprint
        self._active[fp] = inst
        self._by_id[inst.alert_id] = fp
        self._register_source(fp, labels)
        keys = []
        for leaf in self._route.match(labels):
            group_labels = leaf.group_labels(labels)
            key = leaf.group_key(group_labels)
            group = self._groups.get(key)
            if group is None:
                group = _Group(key=key, route=leaf, labels=group_labels, firing={}, resolved={})
                self._groups[key] = group
                self._schedule(group, created_ns + leaf.group_wait_ns)
            group.resolved.pop(fp, None)  # fired again before its resolution was notified
            group.firing[fp] = None
            keys.append(key)
        self._groups_of[fp] = tuple(keys)

    def _leave(self, fp: str, inst: AlertInstance, how: str, now_ns: int) -> None:
        """Drop ``inst`` from the active set and its indexes (not from its groups)."""
        del self._active[fp]
        self._by_id.pop(inst.alert_id, None)
        self._acks.pop(inst.alert_id, None)
        self._unregister_source(fp)
        self._ended[inst.alert_id] = (how, now_ns)
        if len(self._ended) > ENDED_MEMORY:
            self._ended.popitem(last=False)

    # -- muting ------------------------------------------------------------------------

    def _register_source(self, fp: str, labels: Mapping[str, str]) -> None:
        regs = []
        for i, rule in enumerate(self._rules):
            if matches_all(rule.source_matchers, labels):
                key = tuple(labels.get(name, "") for name in rule.equal)
                self._sources[i].setdefault(key, {})[fp] = None
                regs.append((i, key))
        if regs:
            self._source_regs[fp] = regs

    def _unregister_source(self, fp: str) -> None:
        for i, key in self._source_regs.pop(fp, ()):
            holders = self._sources[i].get(key)
            if holders is not None:
                holders.pop(fp, None)
                if not holders:
                    del self._sources[i][key]

    def _mute_reason(self, labels: Mapping[str, str], fp: str, now_ns: int) -> str | None:
        for silence in self._live_silences.values():
            if silence.mutes(labels, now_ns):
                return f"silence:{silence.silence_id}"
        for i, rule in enumerate(self._rules):
            index = self._sources[i]
            if not index or not matches_all(rule.target_matchers, labels):
                continue
            holders = index.get(tuple(labels.get(name, "") for name in rule.equal))
            if holders:
                for source_fp in holders:
                    if source_fp != fp:
                        return f"inhibited:{source_fp}"
        return None

    def muted_by(self, instance: AlertInstance, now_ns: int) -> str | None:
        """Why ``instance`` is muted at ``now_ns``: ``"silence:<silence_id>"`` (the first
        matching active silence, in the order they were added) or
        ``"inhibited:<source fingerprint>"``; ``None`` when it is not muted. Inhibition
        looks at the engine's current firing alerts."""
        return self._mute_reason(instance.match_labels(), instance.fingerprint, now_ns)

    # -- group timers ------------------------------------------------------------------

    def _schedule(self, group: _Group, at_ns: int) -> None:
        group.token = next(self._tokens)
        group.next_ns = at_ns
        heapq.heappush(self._heap, (at_ns, group.token, group.key))

    def next_flush_ns(self) -> int | None:
        """The earliest tick of any group (may be in the past: flush at once), or
        ``None`` when no group exists. Amortised O(1)."""
        heap = self._heap
        while heap:
            at_ns, token, key = heap[0]
            group = self._groups.get(key)
            if group is not None and group.token == token:
                return at_ns
            heapq.heappop(heap)
        return None

    def flush(self, now_ns: int) -> list[Notification]:
        """Run every group tick due at or before ``now_ns``; return the notifications to
        send, in tick order. Each ticked group's next tick is ``now_ns +
        group_interval`` (Alertmanager resets the group's timer after each flush); an
        empty group is dropped. Live silences that have ended are pruned."""
        self._prune_silences(now_ns)
        out: list[Notification] = []
        heap = self._heap
        while heap and heap[0][0] <= now_ns:
            _, token, key = heapq.heappop(heap)
            group = self._groups.get(key)
            if group is None or group.token != token:
                continue
            notification = self._tick(group, now_ns)
            if notification is not None:
                out.append(notification)
            if group.firing:
                self._schedule(group, now_ns + group.route.group_interval_ns)
            else:
                del self._groups[key]
        return out

    def _tick(self, group: _Group, now_ns: int) -> Notification | None:
        resolved_all = list(group.resolved.values())
        group.resolved.clear()  # resolved alerts leave the group at the tick, sent or not
        firing = []
        for fp in group.firing:
            inst = self._active[fp]
            if self._mute_reason(inst.match_labels(), fp, now_ns) is None:
                firing.append(inst)
        resolved = [
            r
            for r in resolved_all
            if self._mute_reason(r.match_labels(), r.fingerprint, now_ns) is None
        ]
        if not firing and not resolved:
            return None  # everything muted (or nothing left): the log stays as it was
        notified = group.notified
        if notified is None:  # first notification of the group
            return self._send(group, firing, (), now_ns) if firing else None
        wants_resolved = self._send_resolved.get(group.route.receiver, True)
        known_resolved = [r for r in resolved if r.alert_id in notified] if wants_resolved else []
        if any(a.alert_id not in notified for a in firing):
            return self._send(group, firing, known_resolved, now_ns)
        if not firing:
            if not notified:
                return None
            if known_resolved:
                return self._send(group, (), known_resolved, now_ns)
            group.notified = set()  # all resolved, receiver doesn't want to hear it
            group.last_sent_ns = now_ns
            return None
        if known_resolved:
            return self._send(group, firing, known_resolved, now_ns)
        last = group.last_sent_ns
        if last is not None and now_ns >= last + group.route.repeat_interval_ns:
            unacked = [a for a in firing if a.alert_id not in self._acks]
            if unacked:
                notification = self._send(group, unacked, (), now_ns)
                group.notified = {a.alert_id for a in firing}
                return notification
        return None

    def _send(
        self,
        group: _Group,
        firing: Sequence[AlertInstance],
        resolved: Sequence[AlertInstance],
        now_ns: int,
    ) -> Notification:
        group.notified = {a.alert_id for a in firing}
        group.last_sent_ns = now_ns
        return Notification(
            notification_id=self._new_id(),
            receiver=group.route.receiver,
            group_key=group.key,
            group_labels=dict(group.labels),
            severity=_top_severity(firing or resolved),
            firing=tuple(firing),
            resolved=tuple(resolved),
            created_ts_ns=now_ns,
        )

    # -- resolve_timeout ---------------------------------------------------------------

    def next_expiry_ns(self) -> int | None:
        """When the least recently received firing alert expires (may be in the past),
        or ``None`` with nothing firing. O(1)."""
        for inst in self._active.values():
            if not inst.resolvable:
                return inst.updated_ts_ns + self._resolve_timeout_ns
        return None

    def expire(self, now_ns: int) -> list[AlertInstance]:
        """Remove the firing alerts last received ``resolve_timeout_s`` or more before
        ``now_ns`` (Alertmanager's ``resolve_timeout``), oldest first, and return them
        as they were last received (``state`` still ``firing``): the caller records them
        as expired at ``now_ns``. No resolved notification is queued for them; their
        acks are dropped; the next receipt of their fingerprint is a new firing.
        Resolvable alerts never expire: they wait for their resolution.
        Cost: O(expired alerts + resolvable alerts received before them)."""
        cutoff = now_ns - self._resolve_timeout_ns
        out = []
        due = []
        for fp, inst in self._active.items():
            if inst.updated_ts_ns > cutoff:
                break
            if not inst.resolvable:
                due.append((fp, inst))
        for fp, inst in due:
            self._leave(fp, inst, "expired", now_ns)
            for key in self._groups_of.pop(fp, ()):
                group = self._groups.get(key)
                if group is not None:
                    group.firing.pop(fp, None)
            out.append(inst)
        return out

    # -- silences ----------------------------------------------------------------------

    def add_silence(self, silence: Silence) -> None:
        """Add ``silence``, or replace the one with the same ``silence_id``.

        Raises:
            ValueError: ``ends_ts_ns`` is not after ``starts_ts_ns``.
        """
        if silence.ends_ts_ns <= silence.starts_ts_ns:
            raise ValueError(
                f"silence {silence.silence_id}: ends_ts_ns ({silence.ends_ts_ns}) must be after "
                f"starts_ts_ns ({silence.starts_ts_ns})"
            )
        self._silences[silence.silence_id] = silence
        self._live_silences[silence.silence_id] = silence

    def expire_silence(self, silence_id: str, now_ns: int) -> Silence:
        """End silence ``silence_id`` at ``now_ns`` (a pending one never starts) and
        return it with ``expired_ts_ns`` set.

        Raises:
            KeyError: no silence with that id.
            ValueError: it has already ended.
        """
        silence = self._silences.get(silence_id)
        if silence is None:
            raise KeyError(f"silence {silence_id}: no such silence")
        end = silence.ends_ts_ns if silence.expired_ts_ns is None else silence.expired_ts_ns
        if end <= now_ns:
            raise ValueError(f"silence {silence_id}: already ended at {end} ns")
        ended = replace(silence, expired_ts_ns=now_ns)
        self._silences[silence_id] = ended
        self._live_silences.pop(silence_id, None)
        return ended

    def silences(self) -> list[Silence]:
        """Every silence known (pending, active and ended), by ``starts_ts_ns``."""
        return sorted(self._silences.values(), key=lambda s: (s.starts_ts_ns, s.silence_id))

    def _prune_silences(self, now_ns: int) -> None:
        ended = [
            sid
            for sid, s in self._live_silences.items()
            if (s.ends_ts_ns if s.expired_ts_ns is None else s.expired_ts_ns) <= now_ns
        ]
        for sid in ended:
            del self._live_silences[sid]

    # -- acknowledgements --------------------------------------------------------------

    def ack(self, alert_id: str, by: str, now_ns: int) -> AlertInstance:
        """Acknowledge the active firing ``alert_id`` ("``by`` has it"): it no longer
        takes part in repeat notifications. Acking again keeps the first ack.

        Raises:
            KeyError: no active alert with that id, and none that recently ended.
            ValueError: the alert has already resolved or expired.
        """
        fp = self._by_id.get(alert_id)
        if fp is None:
            ended = self._ended.get(alert_id)
            if ended is not None:
                how, when = ended
                raise ValueError(f"alert {alert_id}: not active, it {how} at {when} ns")
            raise KeyError(f"alert {alert_id}: no such active alert")
        self._acks.setdefault(alert_id, (now_ns, by))
        return self._active[fp]

    def acks(self) -> dict[str, tuple[int, str]]:
        """Acks of active alerts: ``alert_id`` → (``ts_ns``, ``by``)."""
        return dict(self._acks)

    # -- state -------------------------------------------------------------------------

    def active(self) -> list[AlertInstance]:
        """The firing alerts, by ``starts_ts_ns``."""
        return sorted(self._active.values(), key=lambda a: (a.starts_ts_ns, a.alert_id))

    def restore(
        self,
        instances: Iterable[AlertInstance],
        silences: Iterable[Silence],
        acked: Mapping[str, tuple[int, str]],
        *,
        notified: Mapping[str, int] | None = None,
    ) -> None:
        """Replace the engine's state with what was stored before a restart.

        Args:
            instances: stored alerts; only ``firing`` ones are taken (resolved ones are
                history). They are routed again into fresh groups: a group's first tick
                is its earliest alert's ``starts_ts_ns`` + ``group_wait`` (usually in
                the past, so the next flush evaluates it at once, as Alertmanager does
                for old alerts in a new group).
            silences: every stored silence.
            acked: ``alert_id`` → (``ts_ns``, ``by``); ids not firing are dropped.
            notified: (optional, CoreC's stand-in for Alertmanager's notification log)
                ``alert_id`` → when a notification including it as firing was last
                created. A group's alerts listed here count as already told to its
                receiver (last notified at the latest of their times), so after the
                restart only unlisted alerts (a change) and due repeats are notified.
                Without it, every restored group is notified again at once.
        """
        self._reset()
        for silence in silences:
            self._silences[silence.silence_id] = silence
            if silence.ends_ts_ns > silence.starts_ts_ns and (
                silence.expired_ts_ns is None or silence.expired_ts_ns > silence.starts_ts_ns
            ):
                self._live_silences[silence.silence_id] = silence
        firing = sorted(
            (i for i in instances if i.state == "firing"),
            key=lambda i: (i.updated_ts_ns, i.starts_ts_ns, i.alert_id),
        )
        for inst in sorted(firing, key=lambda i: (i.starts_ts_ns, i.alert_id)):
            self._enter(inst, inst.match_labels(), inst.starts_ts_ns)
        # expire() wants the least recently received first
        for inst in firing:
            self._active.move_to_end(inst.fingerprint)
        self._acks = {aid: (int(ts), by) for aid, (ts, by) in acked.items() if aid in self._by_id}
        if notified:
            for group in self._groups.values():
                ids = [self._active[fp].alert_id for fp in group.firing]
                times = [notified[aid] for aid in ids if aid in notified]
                if times:
                    group.notified = {aid for aid in ids if aid in notified}
                    group.last_sent_ns = max(times)
