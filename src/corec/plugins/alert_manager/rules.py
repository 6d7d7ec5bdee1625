"""Alert rules over the bus's channels, written in YAML.

Plugins and the nucleus raise alerts themselves on ``alerts``; rules turn other
channels' events into alerts too (a trade's loss, a large withdrawal, the VIX above 20).
:func:`load_rules` reads the shipped rules (:data:`SHIPPED_RULES`) and the user's files,
checks every name against the payload classes in :mod:`corec.messages`, and returns a
:class:`RuleSet` whose :meth:`RuleSet.evaluate` runs the rules on one event's payload.

File format (every key is checked; a mistake fails at start with ``file:line: reason``)::

    params:                          # named thresholds: name -> number (read as Decimal)
      large_withdrawal_usd: 1000     # config alert_manager.params overrides the default
    rules:
      - name: large_withdrawal       # the alert's name: snake_case, unique across files
        description: why it exists   # optional, for people
        channel: capital_data        # a channel of corec.core.channels (not alerts/alert_data)
        type: withdrawal_recorded    # a payload TYPE of corec.messages.<channel>
        match: {member: alice}       # optional: field: value (== ) or field: [a, b] (in);
                                     #   selects the events the rule looks at (fire and resolve)
        when:                        # optional: all must hold for the alert to fire
          - {field: amount_usd, op: ">=", value: $large_withdrawal_usd}
        severity: medium             # low | medium | high | critical, or a ladder:
        #   severity:
        #     field: amount_usd      # a number field
        #     op: ">="               # >, >=, <, <=
        #     levels: {medium: $large_withdrawal_usd, critical: 20000}
        #   the most severe level whose comparison holds wins; none holds: no alert.
        #   Thresholds must grow towards critical (for > and >=) or shrink (for < and <=).
        labels: {member: "{member}"} # label -> template; values are text
        message: "{member} withdrew {amount_usd} USD"
        resolve_when:                # optional: these hold (and the alert did not fire):
          - {field: amount_usd, op: "<", value: 10}   #   the same alert, state "resolved"
        resolve_message: "..."       # required with resolve_when

Conditions: ``field`` is a scalar field of the payload class (``msgspec.structs.fields``:
Decimal, int, bool, text or a Literal, possibly optional; tuples and dicts are not
fields rules can read). Operators: ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` (number
fields only), ``in`` and ``not_in`` (the value is a list). Values must fit the field:

- number fields: a number, read from its YAML text as ``Decimal`` (never a float);
  ``$name`` is a param, ``-$name`` its negation; int fields need whole numbers;
- text fields: the value's text as written (quote it if YAML would read it otherwise);
  a Literal field's value must be one of its choices;
- bool fields: ``true`` / ``false``;
- ``null`` (``==`` / ``!=`` only) on optional fields. An optional field that is ``None``
  fails every ordering comparison (and every ladder level).

Templates (``message``, ``resolve_message``, label values) are :meth:`str.format`
strings over the payload's scalar fields and the params (``{$name}``), with format specs
(``{realized_pnl_usd:.2f}``; Decimal formats as Decimal, never through float). A field
that is ``None`` renders as ``n/a``. Only payload fields and params can appear in an
alert: no other configuration, so no secret.

A resolved alert has the rule's severity (a ladder's lowest level). Rules are stateless:
a rule with ``resolve_when`` raises "resolved" on every event that satisfies it, and the
alert manager ignores resolutions of alerts that are not firing.
"""

from __future__ import annotations

import importlib
import itertools
import operator
import re
import string
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from corec.core import channels
from corec.core.events import Payload, payload_types
from corec.core.notices import SEVERITIES, Alert, AlertState, Severity
from corec.plugins.alert_manager.types import RESERVED_LABELS, SEVERITY_RANK

SHIPPED_RULES: Path = Path(__file__).with_name("rules") / "default.yaml"
"""The rules shipped with CoreC (``alert_manager.shipped_rules`` turns them off)."""

CONFIG_PARAMS = "alert_manager.params"
"""The ``path`` of a :class:`RuleError` about a param given in the configuration."""

OPS: tuple[str, ...] = ("==", "!=", "<", "<=", ">", ">=", "in", "not_in")
ORDER_OPS = frozenset({"<", "<=", ">", ">="})
UNREADABLE_CHANNELS = {
    channels.ALERTS: "alerts raised there are received directly, not through rules",
    channels.ALERT_DATA: "it is the alert manager's own output",
}

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PARAM_REF = re.compile(r"^(-?)\$([a-z][a-z0-9_]*)$")
_TOP_KEYS = ("params", "rules")
_RULE_KEYS = (
    "name",
    "description",
    "channel",
    "type",
    "match",
    "when",
    "severity",
    "labels",
    "message",
    "resolve_when",
    "resolve_message",
)
_REQUIRED_RULE_KEYS = ("name", "channel", "type", "severity", "message")
_CONDITION_KEYS = ("field", "op", "value")
_LADDER_KEYS = ("field", "op", "levels")
_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda actual, values: actual in values,
    "not_in": lambda actual, values: actual not in values,
}


class RuleError(ValueError):
    """A rule file (or a configured param) is wrong.

    Attributes:
        path: the rule file (or :data:`CONFIG_PARAMS` for a configured param).
        line: 1-based line of the offending node; ``None`` when there is none (an
            unreadable file, a configured param).
        reason: what is wrong and what was expected.

    ``str(error)`` is ``"path:line: reason"`` (``"path: reason"`` without a line).
    """

    def __init__(self, path: Path | str, line: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")


Value = Decimal | int | str | bool | None
"""A resolved comparison value (``in`` / ``not_in`` take a frozenset of them)."""


@dataclass(frozen=True, slots=True)
class Condition:
    """``payload.<field> <op> value``.

    Fields:
        field: the payload field.
        op: one of :data:`OPS`.
        value: resolved (params substituted, Decimal for Decimal fields); a frozenset for
            ``in`` / ``not_in``.
        param: the ``$name`` / ``-$name`` the value came from, if any.
        line: where it is written (1-based).
    """

    field: str
    op: str
    value: Value | frozenset[Value]
    param: str | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class Ladder:
    """Severity by thresholds on one number field.

    Fields:
        field, op: ``payload.<field> <op> threshold`` (op one of ``>``, ``>=``, ``<``, ``<=``).
        levels: ``(severity, threshold)`` from the most severe down; the first that
            holds is the alert's severity.
    """

    field: str
    op: str
    levels: tuple[tuple[Severity, Decimal | int], ...]

    @property
    def lowest(self) -> Severity:
        """The least severe level (a resolved alert's severity)."""
        return self.levels[-1][0]


@dataclass(frozen=True)
class Rule:
    """One parsed rule (see the module docstring for the file format).

    Fields:
        name: the alert's name.
        channel, type: the events it reads (channel name, payload ``TYPE``).
        match: conditions selecting the events (for firing and resolving).
        when: conditions for firing.
        severity: fixed, or a :class:`Ladder`.
        labels: label name -> template.
        message: template of a firing alert's message.
        resolve_when, resolve_message: when (and how) the alert resolves; empty / None
            when it never does by itself.
        path, line: where the rule is written.
        description: free text from the file.
    """

    name: str
    channel: str
    type: str
    match: tuple[Condition, ...]
    when: tuple[Condition, ...]
    severity: Severity | Ladder
    labels: Mapping[str, str]
    message: str
    resolve_when: tuple[Condition, ...] = ()
    resolve_message: str | None = None
    path: Path = field(default=Path("?"))
    line: int = 0
    description: str = ""


# -- payload introspection -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    """A scalar payload field as rules see it."""

    name: str
    kind: Literal["decimal", "int", "str", "bool"]
    optional: bool
    choices: tuple[str, ...] | None = None

    @property
    def numeric(self) -> bool:
        return self.kind in ("decimal", "int")

    def describe(self) -> str:
        text = {"decimal": "Decimal", "int": "int", "str": "text", "bool": "bool"}[self.kind]
        if self.choices is not None:
            text = "one of " + ", ".join(self.choices)
        return f"{text} or null" if self.optional else text

    def sample(self) -> Any:
        """A value of the field's type, to try format specs on."""
        if self.choices:
            return self.choices[0]
        return {"decimal": Decimal("1.5"), "int": 1, "str": "x", "bool": True}[self.kind]


def _scalar_field(name: str, tp: Any) -> _Field | None:
    """The field's kind, or None when rules cannot read it (tuples, dicts, structs)."""
    optional = False
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        if len(args) != 1:
            return None
        tp = args[0]
        origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if all(isinstance(c, str) for c in choices):
            return _Field(name, "str", optional, tuple(choices))
        return None
    kinds: dict[Any, Literal["decimal", "int", "str", "bool"]] = {
        Decimal: "decimal",
        int: "int",
        str: "str",
        bool: "bool",
    }
    kind = kinds.get(tp)
    return None if kind is None else _Field(name, kind, optional)


def _payload_fields(cls: type[Payload]) -> tuple[dict[str, _Field], list[str]]:
    """(scalar fields by name, names of the other fields)."""
    scalar: dict[str, _Field] = {}
    other: list[str] = []
    for info in msgspec.structs.fields(cls):
        found = _scalar_field(info.name, info.type)
        if found is None:
            other.append(info.name)
        else:
            scalar[info.name] = found
    return scalar, other


def channel_payloads() -> dict[str, dict[str, type[Payload]]]:
    """Payload classes by channel and ``TYPE``: those defined in (or re-exported by)
    ``corec.messages.<channel>`` and registered (:func:`corec.core.events.payload_types`)."""
    registered = set(payload_types().values())
    out: dict[str, dict[str, type[Payload]]] = {}
    for channel in sorted(channels.ALL):
        module = importlib.import_module(f"corec.messages.{channel}")
        found: dict[str, type[Payload]] = {}
        for value in vars(module).values():
            if isinstance(value, type) and value in registered:
                found[value.TYPE] = value
        out[channel] = found
    return out


# -- YAML ----------------------------------------------------------------------------------


def _line(node: Node) -> int:
    return node.start_mark.line + 1


class _Doc:
    """One rule file's node tree and its error helper."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RuleError(path, None, f"cannot read the rule file: {exc}") from exc
        try:
            self.root: Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            raise RuleError(path, line, f"invalid YAML: {exc.problem or exc}") from exc
        except yaml.YAMLError as exc:
            raise RuleError(path, None, f"invalid YAML: {exc}") from exc

    def error(self, node: Node, reason: str) -> RuleError:
        return RuleError(self.path, _line(node), reason)

    def mapping(
        self, node: Node, what: str, allowed: Sequence[str] | None = None
    ) -> dict[str, tuple[ScalarNode, Node]]:
        """The mapping's entries by key; unknown (if ``allowed``) or repeated keys fail."""
        if not isinstance(node, MappingNode):
            raise self.error(node, f"{what} must be a mapping")
        out: dict[str, tuple[ScalarNode, Node]] = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode) or key.tag != _STR:
                raise self.error(key, f"{what}: keys must be text")
            if key.value in out:
                raise self.error(
                    key,
                    f"{what}: {key.value!r} is repeated (first at line {_line(out[key.value][0])})",
                )
            if allowed is not None and key.value not in allowed:
                raise self.error(
                    key, f"{what}: unknown key {key.value!r} (expected {', '.join(allowed)})"
                )
            out[key.value] = (key, value)
        return out

    def sequence(self, node: Node, what: str) -> list[Node]:
        if not isinstance(node, SequenceNode):
            raise self.error(node, f"{what} must be a list")
        return list(node.value)

    def text(self, node: Node, what: str) -> str:
        if not isinstance(node, ScalarNode) or node.tag == _NULL:
            raise self.error(node, f"{what} must be text")
        return str(node.value)


def _number(doc: _Doc, node: Node, what: str) -> Decimal:
    """A finite Decimal from a scalar's text (never through float)."""
    if not isinstance(node, ScalarNode) or node.tag in (_NULL, _BOOL):
        raise doc.error(node, f"{what} must be a number")
    try:
        value = Decimal(node.value)
    except (InvalidOperation, ValueError):
        raise doc.error(node, f"{what} must be a number, got {node.value!r}") from None
    if not value.is_finite():
        raise doc.error(node, f"{what} must be a finite number, got {node.value!r}")
    return value


@dataclass
class _Param:
    value: Decimal
    path: Path
    line: int


# -- parsing -------------------------------------------------------------------------------


@dataclass
class _Context:
    """What a rule is parsed against: the params and the rule's payload class."""

    doc: _Doc
    params: dict[str, _Param]
    payload: type[Payload]
    fields: dict[str, _Field]
    other_fields: list[str]

    def field(self, node: Node, what: str) -> _Field:
        name = self.doc.text(node, what)
        found = self.fields.get(name)
        if found is not None:
            return found
        if name in self.other_fields:
            raise self.doc.error(
                node,
                f"{what}: field {name!r} of {self.payload.TYPE} is not a scalar (rules read "
                f"numbers, text and booleans: {', '.join(self.fields)})",
            )
        raise self.doc.error(
            node,
            f"{what}: {self.payload.TYPE} has no field {name!r} (fields: {', '.join(self.fields)})",
        )

    def param(self, node: ScalarNode, ref: re.Match[str], what: str) -> Decimal:
        name = ref.group(2)
        declared = self.params.get(name)
        if declared is None:
            known = ", ".join(sorted(self.params)) or "none"
            raise self.doc.error(node, f"{what}: unknown param ${name} (declared: {known})")
        return -declared.value if ref.group(1) else declared.value

    def value(self, node: Node, f: _Field, op: str, what: str) -> tuple[Value, str | None]:
        """One comparison value for field ``f``: (resolved value, param reference)."""
        doc = self.doc
        if not isinstance(node, ScalarNode):
            raise doc.error(node, f"{what}: expected one value for {f.name} ({f.describe()})")
        if node.tag == _NULL:
            if not f.optional:
                raise doc.error(node, f"{what}: {f.name} is never null ({f.describe()})")
            if op not in ("==", "!=", "in", "not_in"):
                raise doc.error(node, f"{what}: null only compares with == or !=")
            return None, None
        ref = _PARAM_REF.match(node.value) if node.tag == _STR else None
        if f.numeric:
            number = self.param(node, ref, what) if ref else _number(doc, node, what)
            param = node.value if ref else None
            if f.kind == "int":
                if number != number.to_integral_value():
                    source = f"param {param} = {number}" if param else str(number)
                    raise doc.error(
                        node, f"{what}: {f.name} is an int; {source} is not a whole number"
                    )
                return int(number), param
            return number, param
        if ref is not None:
            raise doc.error(node, f"{what}: params are numbers; {f.name} is {f.describe()}")
        if op in ORDER_OPS:
            raise doc.error(node, f"{what}: {op} needs a number field; {f.name} is {f.describe()}")
        if f.kind == "bool":
            if node.tag != _BOOL:
                raise doc.error(node, f"{what}: {f.name} is a bool; expected true or false")
            return node.value.lower() in ("true", "yes", "on", "y"), None
        if f.choices is not None and node.value not in f.choices:
            raise doc.error(
                node,
                f"{what}: {node.value!r} is not a value of {f.name} ({f.describe()})",
            )
        return str(node.value), None

    def condition(self, field_node: Node, op_node: Node, value_node: Node, what: str) -> Condition:
        f = self.field(field_node, what)
        op = self.doc.text(op_node, f"{what}.op")
        if op not in OPS:
            raise self.doc.error(
                op_node, f"{what}: unknown operator {op!r} (expected {', '.join(OPS)})"
            )
        if op in ORDER_OPS and not f.numeric:
            raise self.doc.error(
                op_node, f"{what}: {op} needs a number field; {f.name} is {f.describe()}"
            )
        if op in ("in", "not_in"):
            items = self.doc.sequence(value_node, f"{what}: the value of {op}")
            if not items:
                raise self.doc.error(value_node, f"{what}: {op} needs at least one value")
            values = frozenset(self.value(item, f, op, what)[0] for item in items)
            return Condition(f.name, op, values, None, _line(field_node))
        value, param = self.value(value_node, f, op, what)
        return Condition(f.name, op, value, param, _line(field_node))

    def conditions(self, node: Node, what: str) -> tuple[Condition, ...]:
        out = []
        for i, item in enumerate(self.doc.sequence(node, what)):
            where = f"{what}[{i}]"
            entries = self.doc.mapping(item, where, _CONDITION_KEYS)
            missing = [k for k in _CONDITION_KEYS if k not in entries]
            if missing:
                raise self.doc.error(item, f"{where}: missing {', '.join(missing)}")
            out.append(
                self.condition(entries["field"][1], entries["op"][1], entries["value"][1], where)
            )
        return tuple(out)

    def matches(self, node: Node) -> tuple[Condition, ...]:
        out = []
        for key, value in self.doc.mapping(node, "match").values():
            op = "in" if isinstance(value, SequenceNode) else "=="
            out.append(self.condition(key, ScalarNode(_STR, op), value, "match"))
        return tuple(out)

    def ladder(self, node: Node) -> Ladder:
        doc = self.doc
        entries = doc.mapping(node, "severity", _LADDER_KEYS)
        missing = [k for k in _LADDER_KEYS if k not in entries]
        if missing:
            raise doc.error(node, f"severity ladder: missing {', '.join(missing)}")
        f = self.field(entries["field"][1], "severity")
        if not f.numeric:
            raise doc.error(
                entries["field"][1],
                f"severity: ladders need a number field; {f.name} is {f.describe()}",
            )
        op_node = entries["op"][1]
        op = doc.text(op_node, "severity.op")
        if op not in ORDER_OPS:
            raise doc.error(
                op_node, f"severity: ladder operator {op!r} must be one of >, >=, <, <="
            )
        levels_node = entries["levels"][1]
        levels: list[tuple[Severity, Decimal | int]] = []
        for name, (key, value) in doc.mapping(levels_node, "severity.levels").items():
            if name not in SEVERITIES:
                raise doc.error(
                    key,
                    f"severity.levels: unknown severity {name!r} (expected {', '.join(SEVERITIES)})",
                )
            threshold, _ = self.value(value, f, op, f"severity.levels.{name}")
            assert threshold is not None and not isinstance(threshold, (str, bool))
            levels.append((name, threshold))  # type: ignore[arg-type]
        if not levels:
            raise doc.error(levels_node, "severity.levels: give at least one severity")
        levels.sort(key=lambda level: SEVERITY_RANK[level[0]])  # low ... critical
        thresholds = [t for _, t in levels]
        rising = op in (">", ">=")
        ordered = all((a < b) if rising else (a > b) for a, b in itertools.pairwise(thresholds))
        if not ordered:
            shown = ", ".join(f"{s} {t}" for s, t in levels)
            direction = "grow" if rising else "shrink"
            raise doc.error(
                levels_node,
                f"severity.levels: with {op} thresholds must {direction} from low to critical "
                f"(got {shown}, params as configured)",
            )
        return Ladder(f.name, op, tuple(reversed(levels)))

    def template(self, node: Node, what: str) -> str:
        doc = self.doc
        text = doc.text(node, what)
        try:
            parts = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise doc.error(node, f"{what}: bad template {text!r}: {exc}") from None
        for _literal, name, spec, conversion in parts:
            if name is None:
                continue
            if not name:
                raise doc.error(node, f"{what}: {{}} must name a payload field or a $param")
            if spec and "{" in spec:
                raise doc.error(node, f"{what}: nested fields in format specs are not supported")
            if conversion not in (None, "s", "r"):
                raise doc.error(node, f"{what}: unknown conversion !{conversion}")
            if name.startswith("$"):
                ref = _PARAM_REF.match(name)
                if ref is None or ref.group(1) or ref.group(2) not in self.params:
                    known = ", ".join(sorted(self.params)) or "none"
                    raise doc.error(node, f"{what}: unknown param {{{name}}} (declared: {known})")
                sample: Any = Decimal("1.5")
            else:
                f = self.fields.get(name)
                if f is None:
                    if name in self.other_fields:
                        reason = "is not a scalar field"
                    elif "." in name or "[" in name:
                        reason = "is not a field (templates name fields, no attributes or indexes)"
                    else:
                        reason = "is not a field"
                    raise doc.error(
                        node,
                        f"{what}: {{{name}}} {reason} of {self.payload.TYPE} "
                        f"(fields: {', '.join(self.fields)})",
                    )
                sample = f.sample()
            try:
                format(sample, spec or "")
            except (ValueError, TypeError) as exc:
                raise doc.error(
                    node, f"{what}: format spec {spec!r} does not fit {{{name}}}: {exc}"
                ) from None
        return text


def _parse_params(doc: _Doc, node: Node, params: dict[str, _Param]) -> None:
    for name, (key, value) in doc.mapping(node, "params").items():
        if not _NAME.match(name):
            raise doc.error(key, f"params: {name!r} must be snake_case")
        first = params.get(name)
        if first is not None:
            raise doc.error(
                key,
                f"params: {name} is already declared at {first.path}:{first.line}; set its "
                f"value in {CONFIG_PARAMS} instead",
            )
        params[name] = _Param(_number(doc, value, f"params.{name}"), doc.path, _line(key))


def _parse_rule(
    doc: _Doc,
    node: Node,
    index: int,
    params: dict[str, _Param],
    payloads: dict[str, dict[str, type[Payload]]],
) -> Rule:
    where = f"rules[{index}]"
    entries = doc.mapping(node, where, _RULE_KEYS)
    missing = [k for k in _REQUIRED_RULE_KEYS if k not in entries]
    if missing:
        raise doc.error(node, f"{where}: missing {', '.join(missing)}")
    name_node = entries["name"][1]
    name = doc.text(name_node, "name")
    if not _NAME.match(name):
        raise doc.error(name_node, f"name {name!r} must be snake_case")
    where = f"rule {name}"
    channel_node = entries["channel"][1]
    channel = doc.text(channel_node, "channel")
    if channel not in channels.ALL:
        raise doc.error(
            channel_node,
            f"{where}: unknown channel {channel!r} (channels: {', '.join(sorted(channels.ALL))})",
        )
    if channel in UNREADABLE_CHANNELS:
        raise doc.error(
            channel_node, f"{where}: rules cannot read {channel}: {UNREADABLE_CHANNELS[channel]}"
        )
    type_node = entries["type"][1]
    type_name = doc.text(type_node, "type")
    payload = payloads[channel].get(type_name)
    if payload is None:
        raise doc.error(
            type_node,
            f"{where}: no payload type {type_name!r} on {channel} "
            f"(types: {', '.join(sorted(payloads[channel]))})",
        )
    fields, other = _payload_fields(payload)
    ctx = _Context(doc, params, payload, fields, other)

    match = ctx.matches(entries["match"][1]) if "match" in entries else ()
    when = ctx.conditions(entries["when"][1], f"{where}: when") if "when" in entries else ()
    severity_node = entries["severity"][1]
    severity: Severity | Ladder
    if isinstance(severity_node, MappingNode):
        severity = ctx.ladder(severity_node)
    else:
        text = doc.text(severity_node, "severity")
        if text not in SEVERITIES:
            raise doc.error(
                severity_node,
                f"{where}: unknown severity {text!r} (expected {', '.join(SEVERITIES)} or a ladder)",
            )
        severity = text  # type: ignore[assignment]
    labels: dict[str, str] = {}
    if "labels" in entries:
        for label, (key, value) in doc.mapping(entries["labels"][1], "labels").items():
            if not _LABEL.match(label):
                raise doc.error(key, f"{where}: label name {label!r} must be an identifier")
            if label in RESERVED_LABELS:
                raise doc.error(
                    key, f"{where}: label {label!r} is reserved ({', '.join(RESERVED_LABELS)})"
                )
            labels[label] = ctx.template(value, f"{where}: labels.{label}")
    message = ctx.template(entries["message"][1], f"{where}: message")
    resolve_when: tuple[Condition, ...] = ()
    resolve_message = None
    if "resolve_when" in entries:
        resolve_node = entries["resolve_when"][1]
        resolve_when = ctx.conditions(resolve_node, f"{where}: resolve_when")
        if not resolve_when:
            raise doc.error(resolve_node, f"{where}: resolve_when needs at least one condition")
        if "resolve_message" not in entries:
            raise doc.error(resolve_node, f"{where}: resolve_when needs a resolve_message")
        resolve_message = ctx.template(entries["resolve_message"][1], f"{where}: resolve_message")
    elif "resolve_message" in entries:
        raise doc.error(
            entries["resolve_message"][0], f"{where}: resolve_message without resolve_when"
        )
    description = (
        doc.text(entries["description"][1], "description") if "description" in entries else ""
    )
    return Rule(
        name=name,
        channel=channel,
        type=type_name,
        match=match,
        when=when,
        severity=severity,
        labels=types.MappingProxyType(labels),
        message=message,
        resolve_when=resolve_when,
        resolve_message=resolve_message,
        path=doc.path,
        line=_line(node),
        description=description,
    )


# -- evaluation ----------------------------------------------------------------------------


class _Missing:
    """A ``None`` field in a template: ``n/a`` whatever the format spec."""

    __slots__ = ()

    def __format__(self, spec: str) -> str:
        return "n/a"

    def __str__(self) -> str:
        return "n/a"

    __repr__ = __str__


_NA = _Missing()
Check = Callable[[Any], bool]


def _compile_condition(c: Condition, optional: bool) -> Check:
    get = operator.attrgetter(c.field)
    compare = _CMP[c.op]
    expected = c.value
    if c.op in ORDER_OPS and optional:

        def check_optional(payload: Any) -> bool:
            actual = get(payload)
            return actual is not None and compare(actual, expected)

        return check_optional
    return lambda payload: compare(get(payload), expected)


class _Template:
    """A template with its field getters resolved once."""

    __slots__ = ("constants", "fixed", "getters", "text")

    def __init__(self, text: str, params: Mapping[str, Decimal]) -> None:
        self.text = text
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name}
        self.getters = tuple(
            (name, operator.attrgetter(name)) for name in sorted(names) if not name.startswith("$")
        )
        self.constants = {name: params[name[1:]] for name in names if name.startswith("$")}
        self.fixed = text.format_map(self.constants) if not self.getters else None

    def render(self, payload: Any) -> str:
        if self.fixed is not None:
            return self.fixed
        values: dict[str, Any] = dict(self.constants)
        for name, get in self.getters:
            value = get(payload)
            values[name] = _NA if value is None else value
        return self.text.format_map(values)


class _CompiledRule:
    """A rule as plain closures over attribute access."""

    __slots__ = (
        "labels",
        "ladder",
        "match",
        "message",
        "name",
        "resolve_message",
        "resolve_severity",
        "resolve_when",
        "severity",
        "when",
    )

    def __init__(
        self, rule: Rule, fields: dict[str, _Field], params: Mapping[str, Decimal]
    ) -> None:
        def compile_all(conditions: tuple[Condition, ...]) -> tuple[Check, ...]:
            return tuple(_compile_condition(c, fields[c.field].optional) for c in conditions)

        self.name = rule.name
        self.match = compile_all(rule.match)
        self.when = compile_all(rule.when)
        self.labels = tuple((k, _Template(v, params)) for k, v in rule.labels.items())
        self.message = _Template(rule.message, params)
        self.resolve_when = compile_all(rule.resolve_when)
        self.resolve_message = (
            _Template(rule.resolve_message, params) if rule.resolve_message is not None else None
        )
        self.ladder: Callable[[Any], Severity | None] | None = None
        if isinstance(rule.severity, Ladder):
            self.severity: Severity | None = None
            self.ladder = self._compile_ladder(rule.severity)
            self.resolve_severity: Severity = rule.severity.lowest
        else:
            self.severity = self.resolve_severity = rule.severity

    @staticmethod
    def _compile_ladder(ladder: Ladder) -> Callable[[Any], Severity | None]:
        get = operator.attrgetter(ladder.field)
        compare = _CMP[ladder.op]
        levels = ladder.levels

        def classify(payload: Any) -> Severity | None:
            actual = get(payload)
            if actual is None:
                return None
            for severity, threshold in levels:
                if compare(actual, threshold):
                    return severity
            return None

        return classify

    def __call__(self, payload: Any) -> Alert | None:
        for check in self.match:
            if not check(payload):
                return None
        for check in self.when:
            if not check(payload):
                break
        else:
            severity = self.severity if self.ladder is None else self.ladder(payload)
            if severity is not None:
                return self._alert(payload, severity, self.message, "firing")
        if not self.resolve_when:
            return None
        for check in self.resolve_when:
            if not check(payload):
                return None
        assert self.resolve_message is not None
        return self._alert(payload, self.resolve_severity, self.resolve_message, "resolved")

    def _alert(
        self, payload: Any, severity: Severity, message: _Template, state: AlertState
    ) -> Alert:
        return Alert(
            name=self.name,
            message=message.render(payload),
            severity=severity,
            labels={label: template.render(payload) for label, template in self.labels},
            state=state,
            resolvable=bool(self.resolve_when),  # it stays firing until resolve_when holds
        )


class RuleSet:
    """Parsed rules, compiled and indexed by ``(channel, payload TYPE)``.

    Attributes:
        rules: every rule, in file order (shipped file first).
        params: the effective param values (file defaults, overridden by config).
    """

    def __init__(
        self,
        rules: tuple[Rule, ...],
        params: Mapping[str, Decimal],
        fields: Mapping[str, dict[str, _Field]],
    ) -> None:
        self.rules = rules
        self.params: Mapping[str, Decimal] = types.MappingProxyType(dict(params))
        index: dict[tuple[str, str], list[_CompiledRule]] = {}
        for rule in rules:
            compiled = _CompiledRule(rule, fields[rule.type], params)
            index.setdefault((rule.channel, rule.type), []).append(compiled)
        self._index = {key: tuple(value) for key, value in index.items()}

    def channels(self) -> frozenset[str]:
        """The channels the rules read (to subscribe to); never ``alerts``."""
        return frozenset(channel for channel, _ in self._index)

    def evaluate(self, channel: str, payload: Payload) -> list[Alert]:
        """The alerts the rules raise for one event: ``payload`` as published on
        ``channel``. Empty when no rule reads this (channel, type) or none holds.
        Firing alerts have ``state="firing"``, resolutions ``state="resolved"``."""
        rules = self._index.get((channel, payload.TYPE))
        if rules is None:
            return []
        out = []
        for rule in rules:
            alert = rule(payload)
            if alert is not None:
                out.append(alert)
        return out

    def __len__(self) -> int:
        return len(self.rules)


def load_rules(
    paths: Sequence[Path],
    *,
    shipped: bool = True,
    params: Mapping[str, Decimal] | None = None,
) -> RuleSet:
    """Read, check and compile rule files.

    Args:
        paths: the user's rule files, read after the shipped ones.
        shipped: include :data:`SHIPPED_RULES` (first).
        params: values for declared params (``alert_manager.params``); they replace the
            files' defaults.

    Returns:
        The :class:`RuleSet`; params are declared once across all files, and any file's
        rules may use any file's params.

    Raises:
        RuleError: a file that cannot be read or is not valid YAML, an unknown key,
            channel, payload type, field, operator, severity, param or template field,
            a value that does not fit its field, a ladder out of order, a duplicate rule
            name or param; a configured param that no file declares
            (``path`` :data:`CONFIG_PARAMS`, no line).
    """
    files = [SHIPPED_RULES, *paths] if shipped else list(paths)
    docs = [_Doc(Path(path)) for path in files]
    declared: dict[str, _Param] = {}
    tops: list[tuple[_Doc, dict[str, tuple[ScalarNode, Node]]]] = []
    for doc in docs:
        if doc.root is None or (isinstance(doc.root, ScalarNode) and doc.root.tag == _NULL):
            continue  # an empty file
        top = doc.mapping(doc.root, "the rule file", _TOP_KEYS)
        if "params" in top:
            _parse_params(doc, top["params"][1], declared)
        tops.append((doc, top))
    for name, value in (params or {}).items():
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise RuleError(
                CONFIG_PARAMS, None, f"{name}: no rule file declares this param (declared: {known})"
            )
        value = Decimal(value)
        if not value.is_finite():
            raise RuleError(CONFIG_PARAMS, None, f"{name}: must be a finite number, got {value}")
        declared[name] = _Param(value, declared[name].path, declared[name].line)

    payloads = channel_payloads()
    rules: list[Rule] = []
    seen: dict[str, Rule] = {}
    for doc, top in tops:
        if "rules" not in top:
            continue
        for i, node in enumerate(doc.sequence(top["rules"][1], "rules")):
            rule = _parse_rule(doc, node, i, declared, payloads)
            first = seen.get(rule.name)
            if first is not None:
                raise doc.error(
                    node,
                    f"rule {rule.name}: the name is already used at {first.path}:{first.line}",
                )
            seen[rule.name] = rule
            rules.append(rule)
    fields = {rule.type: _payload_fields(payloads[rule.channel][rule.type])[0] for rule in rules}
    return RuleSet(tuple(rules), {n: p.value for n, p in declared.items()}, fields)
