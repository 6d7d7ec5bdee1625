"""The nucleus: builds the bus and stores, starts plugins in dependency order,
supervises their tasks, and stops everything gracefully.

Start order (:func:`start_order`): a plugin starts after every plugin serving an
endpoint it requests (hard dependency), and, where that leaves a choice, after the
plugins that consume what it publishes (so no event is published before its
consumers listen). Stop order is the reverse.

Lifecycle of :class:`Node`::

    node = Node(config, plugin_classes)
    await node.start()          # migrations, plugin.start() in order
    reason = await node.run()   # supervised tasks; until shutdown, signal or duration
    await node.stop()           # reverse order, each with a timeout
    await node.close()          # dispose stores
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

import msgspec
import structlog

from corec.core import channels
from corec.core.bus import Bus, create_bus
from corec.core.clock import Clock, ReplayClock, SystemClock
from corec.core.config import CorecConfig
from corec.core.errors import ConfigError, InvalidInput, PluginError
from corec.core.events import make_event
from corec.core.notices import (
    NODE_MODES,
    NODE_SET_MODE,
    NODE_STATUS,
    Alert,
    ModeChanged,
    NodeMode,
    NodeShutdown,
    NodeStatus,
    PluginState,
    PluginStateChanged,
    PluginStatus,
    SetModeRequest,
    Severity,
)
from corec.core.plugin import Plugin, PluginContext, PluginHealth
from corec.core.store import Store
from corec.core.store.migrate import upgrade

log = structlog.get_logger("corec.nucleus")

MAX_TASK_RESTARTS = 5
TASK_STABLE_S = 300.0
"""A task that ran this long before failing starts its restart count afresh."""
TASK_BACKOFF_BASE_S = 0.5
TASK_BACKOFF_MAX_S = 30.0

MODE_FILE = "node-mode.json"
MODE_SEVERITY: dict[NodeMode, Severity] = {"normal": "low", "safe": "high", "emergency": "critical"}


class _SavedMode(msgspec.Struct, frozen=True):
    mode: NodeMode
    since_ts_ns: int
    reason: str
    by: str


def start_order(plugins: dict[str, type[Plugin]]) -> list[str]:
    """Plugin names in start order (see the module docstring).

    Raises:
        PluginError: an endpoint is requested that no enabled plugin serves, or the
            hard dependencies form a cycle.
    """
    servers: dict[str, str] = {}
    for name, cls in plugins.items():
        for endpoint in cls.serves:
            servers[endpoint] = name
    hard: dict[str, set[str]] = {name: set() for name in sorted(plugins)}
    for name, cls in plugins.items():
        for endpoint in cls.requests:
            server = servers.get(endpoint)
            if server is None:
                raise PluginError(
                    f"plugin {name!r} requests {endpoint!r}, which no enabled plugin serves"
                )
            if server != name:
                hard[name].add(server)
    soft: dict[str, set[str]] = {name: set(deps) for name, deps in hard.items()}
    for producer, pcls in plugins.items():
        for consumer, ccls in plugins.items():
            if consumer != producer and set(pcls.publishes) & set(ccls.consumes):
                soft[producer].add(consumer)
    try:
        return list(TopologicalSorter(soft).static_order())
    except CycleError:
        log.warning("start_order_cycle", detail="publish/consume cycle; ordering by requests only")
    try:
        return list(TopologicalSorter(hard).static_order())
    except CycleError as exc:
        raise PluginError(f"plugins request each other in a cycle: {exc.args[1]}") from exc


def choose_clock(config: CorecConfig, classes: dict[str, type[Plugin]]) -> Clock:
    """The clock ``node.clock`` asks for; ``auto`` is a replay clock when an enabled
    plugin replays recorded data (:meth:`Plugin.replay_start_ns`), else the system
    clock. A replay clock starts at the earliest first timestamp of the recordings."""
    starts = [
        start
        for name, cls in classes.items()
        if (start := cls.replay_start_ns(config.sections[name])) is not None  # type: ignore[arg-type]
    ]
    mode = config.node.clock
    if mode == "auto":
        mode = "replay" if starts else "system"
    return ReplayClock(min(starts, default=0)) if mode == "replay" else SystemClock()


@dataclass
class _Task:
    plugin: str
    name: str
    factory: Callable[[], Awaitable[None]]
    essential: bool = False
    task: asyncio.Task[None] | None = None
    failures: int = 0
    done: bool = False


@dataclass
class _Running:
    plugin: Plugin
    ctx: PluginContext
    state: PluginState = "starting"
    error: str | None = None
    tasks: list[_Task] = field(default_factory=list)


class Node:
    """One CoreC node: its clock, bus, stores and plugins.

    Args:
        config: a validated configuration (its ``sections`` name the enabled plugins).
        plugin_classes: installed plugin classes by name (:func:`discover_plugins`).
        bus: a bus to use instead of building one from ``config.bus`` (tests).
        clock: a clock to use instead of the one ``config.node.clock`` names (tests).
    """

    def __init__(
        self,
        config: CorecConfig,
        plugin_classes: dict[str, type[Plugin]],
        *,
        bus: Bus | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.classes = {name: plugin_classes[name] for name in config.sections}
        self.clock: Clock = clock or choose_clock(config, self.classes)
        self.bus: Bus = bus or create_bus(
            config.bus.backend, clock=self.clock, instance_id=config.node.instance_id
        )
        self.order = start_order(self.classes)
        self.stores: dict[str, Store] = {}
        self._running: dict[str, _Running] = {}
        self._started: list[str] = []
        self._shutdown = asyncio.Event()
        self._shutdown_reason = ""
        self._run_started = False
        self._started_monotonic = time.monotonic()
        self._source = f"nucleus@{config.node.instance_id}"
        self.mode: NodeMode = "normal"
        self.mode_since_ts_ns: int | None = None

    # -- stores ----------------------------------------------------------------------
    def _default_sqlite_files(self) -> Iterable[Path]:
        for name in self.classes:
            if getattr(self.config.sections[name], "database_url", None):
                continue
            base = self.config.node.data_dir / f"{name}.db"
            yield from (base, Path(f"{base}-wal"), Path(f"{base}-shm"))

    @property
    def mode_file(self) -> Path:
        """Where the mode is kept across restarts: ``<data_dir>/node-mode.json``."""
        return self.config.node.data_dir / MODE_FILE

    def _remove_sqlite_files(self) -> list[str]:
        files = [*self._default_sqlite_files(), self.mode_file]
        removed = [str(p) for p in files if p.exists()]
        for path in removed:
            Path(path).unlink()
        return removed

    def store(self, name: str) -> Store | None:
        """The plugin's store (opened on first use), or ``None`` if it has no tables."""
        if self.classes[name].migrations is None:
            return None
        if name not in self.stores:
            self.stores[name] = Store(self.config.database_url(name), name=name)
        return self.stores[name]

    async def migrate(self) -> dict[str, str | None]:
        """Upgrade every enabled plugin's database to its newest revision."""
        revisions: dict[str, str | None] = {}
        for name in self.order:
            store = self.store(name)
            migrations = self.classes[name].migrations
            if store is not None and migrations is not None:
                revisions[name] = await upgrade(store, migrations)
        return revisions

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Prepare the data directory, migrate, and start plugins in order.

        Raises:
            PluginError: a plugin failed to start (those started are stopped again).
            ConfigError: a plugin found its configuration wrong at start (an unknown
                exchange or symbol); those started are stopped again.
        """
        node = self.config.node
        if node.fresh_start:
            removed = self._remove_sqlite_files()
            if removed:  # say it: a fresh start throws away what the last run stored
                log.warning(
                    "fresh_start_removed_data", data_dir=str(node.data_dir), removed=removed
                )
        node.data_dir.mkdir(parents=True, exist_ok=True)
        self._restore_mode()
        await self.migrate()
        self.bus.serve(NODE_STATUS, self._serve_status)
        self.bus.serve(NODE_SET_MODE, self._serve_set_mode)
        for name in self.order:
            cls = self.classes[name]
            plugin = cls(self.config.sections[name])  # type: ignore[arg-type]
            ctx = PluginContext(
                name=name,
                node=self,
                bus=self.bus,
                store=self.store(name),
                clock=self.clock,
                config=self.config,
            )
            running = _Running(plugin=plugin, ctx=ctx)
            self._running[name] = running
            await self._set_state(name, "starting")
            try:
                await plugin.start(ctx)
            except Exception as exc:
                running.state, running.error = "failed", f"{type(exc).__name__}: {exc}"
                log.error("plugin_start_failed", plugin=name, error=running.error)
                ctx.detach()
                await self.stop()
                if isinstance(exc, ConfigError):  # the user's to fix: exit 2, as at load
                    raise ConfigError(exc.source, exc.problems) from exc
                raise PluginError(f"plugin {name!r} failed to start: {exc}") from exc
            self._started.append(name)
            await self._set_state(name, "running")
        log.info("node_started", order=self.order, instance_id=node.instance_id)

    async def run(self, *, duration_s: float | None = None, handle_signals: bool = True) -> str:
        """Run the spawned tasks until a shutdown request, a signal, or ``duration_s``.

        Returns:
            Why the node stopped (``"duration elapsed"``, ``"signal SIGTERM"``, or the
            reason given to :meth:`request_shutdown`).
        """
        self._run_started = True
        for running in self._running.values():
            for task in running.tasks:
                self._launch(task)
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self.request_shutdown, f"signal {sig.name}")
                    installed.append(sig)
        try:
            if duration_s is None:
                await self._shutdown.wait()
            else:
                try:
                    await asyncio.wait_for(self._shutdown.wait(), timeout=duration_s)
                except TimeoutError:
                    self.request_shutdown("duration elapsed")
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
        return self._shutdown_reason

    def request_shutdown(self, reason: str) -> None:
        """Ask :meth:`run` to return; the first reason given is kept."""
        if not self._shutdown.is_set():
            self._shutdown_reason = reason
            log.info("shutdown_requested", reason=reason)
            self._shutdown.set()

    async def stop(self) -> None:
        """Stop started plugins in reverse order: cancel their tasks, call ``stop()``
        (bounded by ``shutdown_timeout_s``), detach them from the bus."""
        with contextlib.suppress(Exception):
            await self.bus.publish(
                make_event(
                    channels.SYSTEM,
                    NodeShutdown(reason=self._shutdown_reason or "stop"),
                    source=self._source,
                    clock=self.clock,
                )
            )
        for name in reversed(self._started):
            await self._set_state(name, "stopping")
            await self._stop_plugin(name)
            await self._set_state(name, "stopped")
        self._started.clear()
        self.bus.unserve(NODE_STATUS)
        self.bus.unserve(NODE_SET_MODE)
        await self.bus.close()

    async def close(self) -> None:
        """Dispose every store's connections."""
        for store in self.stores.values():
            await store.dispose()
        self.stores.clear()

    # -- modes -----------------------------------------------------------------------
    def _restore_mode(self) -> None:
        """Take the mode the node had when it last stopped (a halt survives a restart)."""
        try:
            saved = msgspec.json.decode(self.mode_file.read_bytes(), type=_SavedMode)
        except FileNotFoundError:
            return
        except (OSError, msgspec.DecodeError) as exc:
            # Unreadable: start in the most careful mode rather than trading freely.
            log.error("mode_file_unreadable", path=str(self.mode_file), error=str(exc))
            self.mode = "emergency"
            return
        self.mode, self.mode_since_ts_ns = saved.mode, saved.since_ts_ns
        if self.mode != "normal":
            log.warning("mode_restored", mode=self.mode, reason=saved.reason, by=saved.by)

    async def set_mode(self, mode: NodeMode, *, reason: str, by: str) -> ModeChanged:
        """Move the node to ``mode`` (DESIGN.md "Modes").

        The mode is written to :attr:`mode_file` first (so a halt survives a crash),
        then a :class:`ModeChanged` is published on ``system`` and an alert raised:
        ``mode_changed`` with label ``mode``: critical for ``emergency`` and high for
        ``safe`` (both kept firing until the node leaves that mode), low on the way
        back to ``normal``. Asking for the current mode changes and publishes nothing.

        Returns:
            The change (``previous == current`` when nothing changed).

        Raises:
            InvalidInput: ``mode`` is not one of ``normal``, ``safe``, ``emergency``.
        """
        if mode not in NODE_MODES:
            raise InvalidInput(f"mode must be one of {', '.join(NODE_MODES)}, got {mode!r}")
        now_ns = self.clock.now_ns()
        change = ModeChanged(previous=self.mode, current=mode, reason=reason, by=by, ts_ns=now_ns)
        if mode == self.mode:
            return change
        saved = _SavedMode(mode=mode, since_ts_ns=now_ns, reason=reason, by=by)
        self.config.node.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.mode_file.with_suffix(".tmp")
        tmp.write_bytes(msgspec.json.encode(saved))
        tmp.replace(self.mode_file)
        self.mode, self.mode_since_ts_ns = mode, now_ns
        log.warning("mode_changed", previous=change.previous, current=mode, reason=reason, by=by)
        await self.bus.publish(
            make_event(channels.SYSTEM, change, source=self._source, clock=self.clock)
        )
        message = f"node mode {change.previous} -> {mode} by {by}: {reason}"
        if change.previous != "normal":
            await self._publish_alert(
                Alert(
                    name="mode_changed",
                    message=message,
                    severity=MODE_SEVERITY[change.previous],
                    labels={"mode": change.previous},
                    state="resolved",
                )
            )
        await self._publish_alert(
            Alert(
                name="mode_changed",
                message=message,
                severity=MODE_SEVERITY[mode],
                labels={"mode": mode},
                resolvable=mode != "normal",
            )
        )
        return change

    async def _serve_set_mode(self, payload: Any) -> ModeChanged:
        if not isinstance(payload, SetModeRequest):
            raise InvalidInput(
                f"{NODE_SET_MODE} expects a SetModeRequest, got {type(payload).__name__}"
            )
        return await self.set_mode(payload.mode, reason=payload.reason, by=payload.by)

    async def _serve_status(self, payload: Any) -> NodeStatus:
        health = self.health()
        plugins = tuple(
            PluginStatus(
                name=name,
                state=str(info.get("state", "stopped")),
                status=str(info.get("status", info.get("state", "stopped"))),
                error=info.get("error"),
                details={k: v for k, v in info.items() if k not in ("state", "status", "error")},
            )
            for name, info in health["plugins"].items()
        )
        return NodeStatus(
            instance_id=self.config.node.instance_id,
            mode=self.mode,
            mode_since_ts_ns=self.mode_since_ts_ns,
            uptime_s=Decimal(str(health["uptime_s"])),
            plugins=plugins,
        )

    async def _publish_alert(self, alert: Alert) -> None:
        with contextlib.suppress(Exception):
            await self.bus.publish(
                make_event(channels.ALERTS, alert, source=self._source, clock=self.clock)
            )

    # -- supervision -----------------------------------------------------------------
    def spawn(
        self,
        plugin: str,
        name: str,
        factory: Callable[[], Awaitable[None]],
        *,
        essential: bool = False,
    ) -> None:
        """Register a supervised task of ``plugin`` (started when the node runs)."""
        task = _Task(plugin=plugin, name=name, factory=factory, essential=essential)
        self._running[plugin].tasks.append(task)
        if self._run_started:
            self._launch(task)

    def _launch(self, task: _Task) -> None:
        if task.task is None and not task.done:
            task.task = asyncio.create_task(
                self._supervise(task), name=f"{task.plugin}.{task.name}"
            )

    async def _supervise(self, task: _Task) -> None:
        while True:
            started = time.monotonic()
            try:
                await task.factory()
                task.done = True
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if time.monotonic() - started >= TASK_STABLE_S:
                    task.failures = 0  # it had been running fine: a fresh incident
                task.failures += 1
                error = f"{type(exc).__name__}: {exc}"
                log.exception(
                    "task_failed", plugin=task.plugin, task=task.name, failures=task.failures
                )
                if task.failures > MAX_TASK_RESTARTS:
                    running = self._running[task.plugin]
                    running.state, running.error = "failed", error
                    task.done = True
                    await self._set_state(task.plugin, "failed", error)
                    await self._stop_plugin(task.plugin, current=task)
                    if task.plugin in self._started:
                        self._started.remove(task.plugin)
                    await self._alert(
                        "plugin_crashed",
                        f"{task.plugin}.{task.name} failed {task.failures} times and was given up: {error}",
                        "critical",
                        {"plugin": task.plugin, "task": task.name},
                    )
                    if task.essential:
                        self.request_shutdown(f"{task.plugin}.{task.name} failed: {error}")
                    return
                await self._alert(
                    "plugin_task_restarted",
                    f"{task.plugin}.{task.name} failed ({error}); restart {task.failures} of {MAX_TASK_RESTARTS}",
                    "high",
                    {"plugin": task.plugin, "task": task.name},
                )
                await self._set_state(task.plugin, "restarting", error)
                await asyncio.sleep(
                    min(TASK_BACKOFF_BASE_S * 2 ** (task.failures - 1), TASK_BACKOFF_MAX_S)
                )
                await self._set_state(task.plugin, "running")

    async def _stop_plugin(self, name: str, *, current: _Task | None = None) -> None:
        """Stop one plugin: set its ``stopping`` event and give its tasks
        ``shutdown_timeout_s`` to return at a clean point (a replay finishes its bar),
        cancel what is left (but ``current``, the caller's own task), call its
        ``stop()`` under the same bound, and detach it from the bus."""
        running = self._running[name]
        timeout_s = self.config.node.shutdown_timeout_s
        running.ctx.stopping.set()
        tasks = [
            t.task
            for t in running.tasks
            if t is not current and t.task is not None and not t.task.done()
        ]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout_s)
            for task in late:
                log.warning(
                    "task_cancelled_at_stop", plugin=name, task=task.get_name(), grace_s=timeout_s
                )
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=timeout_s)
        try:
            await asyncio.wait_for(running.plugin.stop(), timeout=timeout_s)
        except Exception as exc:
            log.error("plugin_stop_failed", plugin=name, error=f"{type(exc).__name__}: {exc}")
        running.ctx.detach()

    async def _set_state(self, plugin: str, state: PluginState, error: str | None = None) -> None:
        running = self._running.get(plugin)
        if running is not None and not (running.state == "failed" and state == "running"):
            running.state = state
        with contextlib.suppress(Exception):
            await self.bus.publish(
                make_event(
                    channels.SYSTEM,
                    PluginStateChanged(plugin=plugin, state=state, error=error),
                    source=self._source,
                    clock=self.clock,
                )
            )

    async def _alert(self, name: str, message: str, severity: Any, labels: dict[str, str]) -> None:
        await self._publish_alert(
            Alert(name=name, message=message, severity=severity, labels=labels)
        )

    # -- reporting -------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Node health: uptime, each plugin's state and health details, bus counters."""
        plugins: dict[str, Any] = {}
        for name in self.order:
            running = self._running.get(name)
            if running is None:
                plugins[name] = {"state": "stopped"}
                continue
            try:
                health = running.plugin.health()
            except Exception as exc:
                health = PluginHealth(
                    status="failed", details={"error": f"{type(exc).__name__}: {exc}"}
                )
            plugins[name] = {
                "state": running.state,
                "status": "failed" if running.state == "failed" else health.status,
                "error": running.error,
                **health.details,
            }
        return {
            "instance_id": self.config.node.instance_id,
            "uptime_s": round(time.monotonic() - self._started_monotonic, 3),
            "plugins": plugins,
            "bus": self.bus.stats.as_dict(),
        }

    def plugin(self, name: str) -> Plugin:
        """The running plugin instance ``name`` (for reports and tests)."""
        return self._running[name].plugin

    async def status(self) -> dict[str, Any]:
        """Every plugin's ``read_status`` under its ``status_key``."""
        return await read_status(self.config, self.classes, self.store)


async def read_status(
    config: CorecConfig,
    classes: dict[str, type[Plugin]],
    store_for: Callable[[str], Store | None],
) -> dict[str, Any]:
    """Each enabled plugin's ``read_status`` under its ``status_key`` (no node needed)."""
    out: dict[str, Any] = {}
    for name, cls in classes.items():
        if cls.status_key is None:
            continue
        out[cls.status_key] = await cls.read_status(store_for(name), config.sections[name])  # type: ignore[arg-type]
    return out
