"""Configuration: one YAML file, a section per plugin, typed models, env overrides.

Shape of the file::

    node:     {instance_id, data_dir, fresh_start, clock, plugins, log: {...}}
    bus:      {backend, request_timeout_s}
    <plugin>: the plugin's own section, validated by its ``Config`` model

Every field can be overridden from the environment: ``COREC__SECTION__FIELD=value``
(nested fields with more ``__``; the value is read as YAML, so ``250``, ``true`` and
``[a, b]`` work). Decimal-looking YAML numbers are read as :class:`~decimal.Decimal`,
never as binary floats.

Errors are collected, not raised one at a time: :class:`~corec.core.errors.ConfigError`
lists every problem as ``line N: section.field: what was expected (got …)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from corec.core.errors import ConfigError

ENV_PREFIX = "COREC__"


class FrozenModel(BaseModel):
    """Base of every configuration model: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class LogSettings(FrozenModel):
    """Logging: structured JSON to a file, human-readable lines to the console.

    Fields:
        level: lowest level written to the file.
        console_level: lowest level written to stderr (keeps progress bars readable).
        file: the JSON log file; default ``<data_dir>/corec.log``.
    """

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    console_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING"
    file: Path | None = None


class NodeSettings(FrozenModel):
    """The node itself.

    Fields:
        instance_id: this node's name in event sources (``plugin@instance``).
        data_dir: where SQLite files, logs and caches go.
        fresh_start: delete this node's SQLite files in ``data_dir`` before starting
            (the demo uses it so every run starts from the same state).
        clock: ``system`` (wall clock), ``replay`` (time moved by replayed data), or
            ``auto``: ``replay`` when an enabled plugin replays a recording.
        plugins: plugins to run, in any order; default every installed plugin.
        shutdown_timeout_s: how long each plugin gets to stop.
    """

    instance_id: str = Field(default="node-1", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    data_dir: Path = Path("var")
    fresh_start: bool = False
    clock: Literal["auto", "system", "replay"] = "auto"
    plugins: tuple[str, ...] | None = None
    shutdown_timeout_s: float = Field(default=10.0, gt=0)
    log: LogSettings = LogSettings()


class BusSettings(FrozenModel):
    """The bus backend (``memory``: in-process) and the default request timeout."""

    backend: Literal["memory"] = "memory"
    request_timeout_s: float = Field(default=5.0, gt=0)


class CorecConfig(FrozenModel):
    """A validated configuration.

    Fields:
        source: the file it came from, or ``"defaults"``.
        node, bus: core settings.
        sections: each enabled plugin's validated config model, by plugin name.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    source: str
    node: NodeSettings
    bus: BusSettings
    sections: dict[str, BaseModel]

    def database_url(self, plugin: str) -> str:
        """The plugin's database URL: its ``database_url`` field, else the SQLite file
        ``sqlite:///<data_dir>/<plugin>.db``."""
        section = self.sections.get(plugin)
        url = getattr(section, "database_url", None)
        if url:
            return str(url)
        return f"sqlite:///{self.node.data_dir / f'{plugin}.db'}"


class _DecimalLoader(yaml.SafeLoader):
    """YAML loader that reads floats as Decimal (exact)."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    text = loader.construct_scalar(node).replace("_", "")
    lowered = text.lower()
    if lowered in {".inf", "+.inf", ".nan", "-.inf"}:
        return yaml.SafeLoader.construct_yaml_float(loader, node)
    try:
        return Decimal(text)
    except InvalidOperation:  # e.g. YAML 1.1 base-60 floats such as 1:30.5
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not a decimal number", node.start_mark
        ) from None


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


def parse_yaml(text: str, *, source: str) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """Parse YAML text into a dict and a map from key paths to 1-based line numbers.

    Raises:
        ConfigError: the text is not YAML, its top level is not a mapping, or a key
            appears twice in one mapping (YAML would silently keep the last).
    """
    try:
        node = yaml.compose(text, Loader=_DecimalLoader)
        data = yaml.load(text, Loader=_DecimalLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(
            source, [f"{where}not valid YAML: {getattr(exc, 'problem', exc)}"]
        ) from exc
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["line 1: the top level must be a mapping of sections"])
    lines: dict[tuple[str, ...], int] = {}
    duplicates: list[str] = []
    _collect_lines(node, (), lines, duplicates)
    if duplicates:
        raise ConfigError(source, duplicates)
    return data, lines


def _collect_lines(
    node: yaml.Node | None,
    path: tuple[str, ...],
    out: dict[tuple[str, ...], int],
    duplicates: list[str],
) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key_path = (*path, str(key_node.value))
            line = key_node.start_mark.line + 1
            if key_path in out:
                duplicates.append(
                    f"line {line}: {'.'.join(key_path)}: duplicate key (first at line {out[key_path]})"
                )
            else:
                out[key_path] = line
            _collect_lines(value_node, key_path, out, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            item_path = (*path, str(index))
            out[item_path] = item.start_mark.line + 1
            _collect_lines(item, item_path, out, duplicates)


def apply_env_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> list[str]:
    """Apply ``COREC__SECTION__FIELD=value`` overrides to ``raw`` in place.

    Returns the dotted paths that were overridden (for error messages).

    Raises:
        ConfigError: a variable names a path through a non-mapping value, or its value
            is not valid YAML.
    """
    applied: list[str] = []
    problems: list[str] = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not parts:
            continue
        try:
            value = yaml.load(env[name], Loader=_DecimalLoader)
        except yaml.YAMLError as exc:
            problems.append(f"{name}: value is not valid YAML: {exc}")
            continue
        target = raw
        for part in parts[:-1]:
            nxt = target.setdefault(part, {})
            if not isinstance(nxt, dict):
                problems.append(f"{name}: {'.'.join(parts)} goes through a non-mapping value")
                break
            target = nxt
        else:
            target[parts[-1]] = value
            applied.append(".".join(parts))
    if problems:
        raise ConfigError("environment", problems)
    return applied


def _format_error(
    section: str, err: Mapping[str, Any], lines: dict[tuple[str, ...], int], env_paths: list[str]
) -> str:
    loc = tuple(str(p) for p in err.get("loc", ()))
    path = (section, *loc)
    dotted = ".".join(path)
    where = ""
    if dotted in env_paths:
        where = f"environment {ENV_PREFIX}{'__'.join(p.upper() for p in path)}: "
    else:
        for cut in range(len(path), 0, -1):
            line = lines.get(path[:cut])
            if line is not None:
                where = f"line {line}: "
                break
    message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        message = "unknown field"
    got = ""
    if "input" in err and err.get("type") not in {"missing", "extra_forbidden"}:
        shown = repr(err["input"])
        got = f" (got {shown[:80]})"
    return f"{where}{dotted}: {message}{got}"


def load_config(
    path: Path | str | None,
    plugin_models: Mapping[str, type[BaseModel]],
    *,
    env: Mapping[str, str] | None = None,
) -> CorecConfig:
    """Read, override and validate a configuration.

    Args:
        path: the YAML file; ``None`` for the embedded defaults.
        plugin_models: every installed plugin's config model, by plugin name.
        env: environment to read overrides from (default ``os.environ``).

    Returns:
        A :class:`CorecConfig` whose ``sections`` hold the *enabled* plugins' models.

    Raises:
        ConfigError: the file is missing or invalid; lists every problem with its line.
    """
    source = str(path) if path is not None else "defaults"
    raw: dict[str, Any] = {}
    lines: dict[tuple[str, ...], int] = {}
    if path is not None:
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(source, [f"cannot read the file: {exc.strerror or exc}"]) from exc
        raw, lines = parse_yaml(text, source=source)
    env_paths = apply_env_overrides(raw, os.environ if env is None else env)

    problems: list[str] = []
    node: NodeSettings | None = None
    bus: BusSettings | None = None
    for name, model in (("node", NodeSettings), ("bus", BusSettings)):
        value = raw.get(name) or {}
        if not isinstance(value, dict):
            problems.append(f"line {lines.get((name,), 1)}: {name}: expected a mapping of fields")
            continue
        try:
            validated = model.model_validate(value)
        except ValidationError as exc:
            problems.extend(_format_error(name, e, lines, env_paths) for e in exc.errors())
            continue
        if name == "node":
            node = validated  # type: ignore[assignment]
        else:
            bus = validated  # type: ignore[assignment]

    known = {"node", "bus", *plugin_models}
    for name in raw:
        if name not in known:
            env_names = [p for p in env_paths if p.split(".")[0] == name]
            where = (
                f"environment {ENV_PREFIX}{env_names[0].upper().replace('.', '__')}: "
                if env_names and (name,) not in lines
                else f"line {lines.get((name,), 1)}: "
            )
            problems.append(
                f"{where}{name}: unknown section; expected one of {', '.join(sorted(known))}"
            )

    enabled = list(plugin_models)
    if node is not None and node.plugins is not None:
        unknown = [p for p in node.plugins if p not in plugin_models]
        if unknown:
            problems.append(
                f"line {lines.get(('node', 'plugins'), 1)}: node.plugins: unknown plugin(s) "
                f"{', '.join(unknown)}; installed: {', '.join(sorted(plugin_models))}"
            )
        enabled = [p for p in node.plugins if p in plugin_models]

    sections: dict[str, BaseModel] = {}
    for name in enabled:
        value = raw.get(name) or {}
        if not isinstance(value, dict):
            problems.append(f"line {lines.get((name,), 1)}: {name}: expected a mapping of fields")
            continue
        try:
            sections[name] = plugin_models[name].model_validate(value)
        except ValidationError as exc:
            problems.extend(_format_error(name, e, lines, env_paths) for e in exc.errors())

    if problems or node is None or bus is None:
        raise ConfigError(source, problems)
    return CorecConfig(source=source, node=node, bus=bus, sections=sections)
