"""Configuration: defaults, YAML with line numbers, env overrides, exact decimals."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from corec.core.config import (
    BusSettings,
    CorecConfig,
    NodeSettings,
    apply_env_overrides,
    load_config,
)
from corec.core.errors import ConfigError

PLUGINS = [
    "alert_manager",
    "api",
    "capital_pool",
    "daily_settlement",
    "exchange_sync",
    "macro_sync",
    "market_monitor",
    "trading_execution",
    "user_management",
]

Load = Callable[..., CorecConfig]


@pytest.fixture
def models(plugin_classes: dict[str, Any]) -> dict[str, Any]:
    return {name: cls.Config for name, cls in plugin_classes.items()}


@pytest.fixture
def load(tmp_path: Path, models: dict[str, Any]) -> Load:
    """``load(yaml_text, env={})``: write the text to a file and load it."""

    def _load(text: str, env: dict[str, str] | None = None) -> CorecConfig:
        path = tmp_path / "corec.yaml"
        path.write_text(text, encoding="utf-8")
        return load_config(path, models, env=env or {})

    return _load


def problems_of(load: Load, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(text, env)
    return caught.value.problems


# -- defaults -------------------------------------------------------------------------
def test_defaults(models: dict[str, Any]) -> None:
    config = load_config(None, models, env={})
    assert config.source == "defaults"
    assert config.node == NodeSettings()
    assert config.node.instance_id == "node-1"
    assert config.node.data_dir == Path("var")
    assert config.node.clock == "auto"
    assert config.node.fresh_start is False
    assert config.node.plugins is None
    assert config.node.shutdown_timeout_s == 10.0
    assert config.node.log.level == "INFO"
    assert config.node.log.console_level == "WARNING"
    assert config.bus == BusSettings(backend="memory", request_timeout_s=5.0)
    assert sorted(config.sections) == PLUGINS
    for name, model in models.items():
        assert config.sections[name] == model()
    pool = config.sections["capital_pool"]
    assert pool.min_contribution_usd == Decimal(100)
    assert pool.max_active_ratio == Decimal("0.6")


def test_empty_file_gives_the_defaults(load: Load, tmp_path: Path) -> None:
    config = load("")
    assert config.source == str(tmp_path / "corec.yaml")
    assert sorted(config.sections) == PLUGINS
    assert config.bus.backend == "memory"


def test_database_url_defaults_under_data_dir(load: Load, tmp_path: Path) -> None:
    config = load(
        f"node:\n  data_dir: {tmp_path / 'data'}\n"
        "alert_manager:\n  database_url: postgresql+asyncpg://corec@db/alerts\n"
    )
    assert config.database_url("capital_pool") == (
        f"sqlite:///{tmp_path / 'data' / 'capital_pool.db'}"
    )
    assert config.database_url("alert_manager") == "postgresql+asyncpg://corec@db/alerts"


def test_file_values_are_applied(load: Load) -> None:
    config = load(
        "node:\n"
        "  instance_id: pool-a\n"
        "  clock: replay\n"
        "  plugins: [capital_pool, alert_manager]\n"
        "bus:\n"
        "  request_timeout_s: 2.5\n"
        "capital_pool:\n"
        "  min_contribution_usd: 250\n"
    )
    assert config.node.instance_id == "pool-a"
    assert config.node.clock == "replay"
    assert config.node.plugins == ("capital_pool", "alert_manager")
    assert list(config.sections) == ["capital_pool", "alert_manager"]
    assert config.bus.request_timeout_s == 2.5
    assert isinstance(config.bus.request_timeout_s, float)
    assert config.sections["capital_pool"].min_contribution_usd == Decimal("250")


def test_config_is_frozen(models: dict[str, Any]) -> None:
    config = load_config(None, models, env={})
    with pytest.raises(ValueError, match="frozen"):
        config.node.instance_id = "other"  # type: ignore[misc]


# -- YAML decimals --------------------------------------------------------------------
def test_yaml_floats_load_as_exact_decimals(load: Load) -> None:
    config = load(
        "capital_pool:\n"
        "  max_active_ratio: 0.1\n"
        "  min_contribution_usd: 100.10\n"
        "  min_allocation_usd: 1_000.25\n"
        "trading_execution:\n"
        "  taker_fee_rate: 0.0003\n"
    )
    pool = config.sections["capital_pool"]
    assert pool.max_active_ratio == Decimal("0.1")
    assert str(pool.max_active_ratio) == "0.1"
    assert pool.max_active_ratio != Decimal.from_float(0.1)  # not the binary float's expansion
    assert str(pool.min_contribution_usd) == "100.10"
    assert pool.min_allocation_usd == Decimal("1000.25")
    assert str(config.sections["trading_execution"].taker_fee_rate) == "0.0003"


def test_yaml_sexagesimal_number_is_a_config_error(load: Load) -> None:
    # YAML 1.1 reads 1:30.5 as a (base 60) float; it must not crash the loader with
    # decimal.InvalidOperation: either it is rejected or read as 90.5 (above the maximum 1).
    problems = problems_of(load, "capital_pool:\n  max_active_ratio: 1:30.5\n")
    assert len(problems) == 1
    assert problems[0].startswith("line 2: ")


# -- file errors ----------------------------------------------------------------------
def test_wrong_type_names_line_and_path(load: Load, tmp_path: Path) -> None:
    text = (
        "node:\n"  # 1
        f"  data_dir: {tmp_path}\n"  # 2
        "bus:\n"  # 3
        "  backend: memory\n"  # 4
        "# the pool\n"  # 5
        "capital_pool:\n"  # 6
        "  min_contribution_usd: lots\n"  # 7
    )
    with pytest.raises(ConfigError) as caught:
        load(text)
    assert caught.value.source == str(tmp_path / "corec.yaml")
    assert caught.value.problems == [
        "line 7: capital_pool.min_contribution_usd: Input should be a valid decimal (got 'lots')"
    ]
    assert str(tmp_path / "corec.yaml") in str(caught.value)


def test_unknown_field_and_section(load: Load) -> None:
    problems = problems_of(
        load,
        "capital_pool:\n  min_contribution_usd: 100\n  colour: blue\nexchange_synk:\n  x: 1\n",
    )
    assert len(problems) == 2
    section = next(p for p in problems if "exchange_synk" in p)
    assert "line 3: capital_pool.colour: unknown field" in problems
    assert section == (
        "line 4: exchange_synk: unknown section; expected one of alert_manager, api, bus, "
        "capital_pool, daily_settlement, exchange_sync, macro_sync, market_monitor, node, "
        "trading_execution, user_management"
    )


def test_nested_error_names_the_dotted_path(load: Load) -> None:
    problems = problems_of(
        load,
        "capital_pool:\n"  # 1
        "  phases:\n"  # 2
        "    - name: seed\n"  # 3
        "      min_nav_usd: 100\n"  # 4
        "      risk_per_trade: 0.03\n"  # 5
        "    - name: growth\n"  # 6
        "      min_nav_usd: 1000\n"  # 7
        "      risk_per_trade: 2\n",  # 8
    )
    assert len(problems) == 1
    assert problems[0].startswith("line 8: capital_pool.phases.1.risk_per_trade: ")
    assert "less than or equal to 1" in problems[0]


def test_every_problem_is_reported_at_once(load: Load) -> None:
    problems = problems_of(
        load,
        "foo:\n"  # 1
        "  x: 1\n"  # 2
        "node:\n"  # 3
        "  plugins: [capital_pool, nope]\n"  # 4
        "capital_pool:\n"  # 5
        "  min_contribution_usd: lots\n"  # 6
        "  colour: blue\n"  # 7
        "bus:\n"  # 8
        "  request_timeout_s: soon\n",  # 9
    )
    assert len(problems) == 5, problems
    assert sorted(int(p.split(":")[0].removeprefix("line ")) for p in problems) == [1, 4, 6, 7, 9]
    by_line = {p.split(":")[0]: p for p in problems}
    assert by_line["line 9"].startswith("line 9: bus.request_timeout_s: ")
    assert by_line["line 1"].startswith("line 1: foo: unknown section")
    assert by_line["line 4"].startswith("line 4: node.plugins: unknown plugin(s) nope; installed:")
    assert by_line["line 6"].startswith("line 6: capital_pool.min_contribution_usd: ")
    assert by_line["line 7"] == "line 7: capital_pool.colour: unknown field"


def test_invalid_yaml_names_the_line(load: Load) -> None:
    problems = problems_of(load, "node:\n  data_dir: var\n instance_id: x\n")
    assert len(problems) == 1
    assert problems[0].startswith("line 3: not valid YAML: ")


def test_top_level_must_be_a_mapping(load: Load) -> None:
    assert problems_of(load, "- capital_pool\n- alert_manager\n") == [
        "line 1: the top level must be a mapping of sections"
    ]


def test_section_must_be_a_mapping(load: Load) -> None:
    assert problems_of(load, "node:\n  instance_id: a\ncapital_pool: 5\n") == [
        "line 3: capital_pool: expected a mapping of fields"
    ]


def test_missing_file(tmp_path: Path, models: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "absent.yaml", models, env={})


def test_node_plugins_selects_sections(load: Load) -> None:
    config = load(
        "node:\n  plugins: [market_monitor]\n"
        "capital_pool:\n  min_contribution_usd: 5\n"  # disabled: kept out of sections
    )
    assert list(config.sections) == ["market_monitor"]


def test_unknown_plugin_in_node_plugins(load: Load) -> None:
    problems = problems_of(load, "node:\n  instance_id: a\n  plugins: [capital_pool, telepathy]\n")
    assert problems == [
        "line 3: node.plugins: unknown plugin(s) telepathy; installed: alert_manager, api, "
        "capital_pool, daily_settlement, exchange_sync, macro_sync, market_monitor, "
        "trading_execution, user_management"
    ]


def test_instance_id_pattern(load: Load) -> None:
    (problem,) = problems_of(load, "node:\n  instance_id: 'node 1'\n")
    assert problem.startswith("line 2: node.instance_id: ")
    assert "'node 1'" in problem


# -- environment overrides ------------------------------------------------------------
def test_env_override_reads_decimals(load: Load) -> None:
    config = load(
        "capital_pool:\n  min_contribution_usd: 100\n",
        env={"COREC__CAPITAL_POOL__MIN_CONTRIBUTION_USD": "250"},
    )
    value = config.sections["capital_pool"].min_contribution_usd
    assert value == Decimal("250")
    assert isinstance(value, Decimal)


def test_env_override_decimal_is_exact(load: Load) -> None:
    config = load("", env={"COREC__CAPITAL_POOL__MAX_ACTIVE_RATIO": "0.1"})
    assert str(config.sections["capital_pool"].max_active_ratio) == "0.1"


def test_nested_env_overrides(load: Load, tmp_path: Path) -> None:
    config = load(
        "exchange_sync:\n  replay:\n    speed: max\n",
        env={
            "COREC__EXCHANGE_SYNC__REPLAY__SPEED": "60",
            "COREC__EXCHANGE_SYNC__CCXT__INTERVAL_S": "30",
            "COREC__NODE__LOG__LEVEL": "DEBUG",
            "COREC__NODE__DATA_DIR": str(tmp_path / "elsewhere"),
            "COREC__NODE__PLUGINS": "[exchange_sync]",
            "COREC__BUS__REQUEST_TIMEOUT_S": "1.5",
            "COREC_NOT_OURS": "ignored",
            "HOME": "/root",
        },
    )
    sync = config.sections["exchange_sync"]
    assert sync.replay.speed == 60
    assert sync.replay.speed_factor() == 60.0
    assert sync.replay.symbol == "BTC/USD:USD"  # the rest of the mapping is kept
    assert sync.ccxt.interval_s == 30.0
    assert config.node.log.level == "DEBUG"
    assert config.node.data_dir == tmp_path / "elsewhere"
    assert list(config.sections) == ["exchange_sync"]
    assert config.bus.request_timeout_s == 1.5


def test_invalid_env_value_names_the_variable(load: Load) -> None:
    problems = problems_of(
        load,
        "capital_pool:\n  min_contribution_usd: 100\n",
        env={"COREC__CAPITAL_POOL__MIN_CONTRIBUTION_USD": "abc"},
    )
    assert problems == [
        "environment COREC__CAPITAL_POOL__MIN_CONTRIBUTION_USD: "
        "capital_pool.min_contribution_usd: Input should be a valid decimal (got 'abc')"
    ]


def test_env_unknown_field_names_the_variable(load: Load) -> None:
    (problem,) = problems_of(load, "", env={"COREC__BUS__COLOUR": "blue"})
    assert problem == "environment COREC__BUS__COLOUR: bus.colour: unknown field"


def test_env_through_a_non_mapping_value() -> None:
    raw: dict[str, Any] = {"node": {"data_dir": "var"}}
    with pytest.raises(ConfigError) as caught:
        apply_env_overrides(raw, {"COREC__NODE__DATA_DIR__X": "1"})
    assert caught.value.source == "environment"
    assert caught.value.problems == [
        "COREC__NODE__DATA_DIR__X: node.data_dir.x goes through a non-mapping value"
    ]


def test_env_value_that_is_not_yaml() -> None:
    with pytest.raises(ConfigError) as caught:
        apply_env_overrides({}, {"COREC__NODE__PLUGINS": "[capital_pool"})
    (problem,) = caught.value.problems
    assert problem.startswith("COREC__NODE__PLUGINS: value is not valid YAML")


def test_apply_env_overrides_returns_paths() -> None:
    raw: dict[str, Any] = {"capital_pool": {"min_contribution_usd": Decimal(100)}}
    applied = apply_env_overrides(
        raw,
        {
            "COREC__CAPITAL_POOL__MIN_CONTRIBUTION_USD": "250.50",
            "COREC__ALERT_MANAGER__PARAMS__TRADE_LOSS_LOW_USD": "75",
            "OTHER": "x",
        },
    )
    assert applied == [
        "alert_manager.params.trade_loss_low_usd",
        "capital_pool.min_contribution_usd",
    ]
    assert raw == {
        "capital_pool": {"min_contribution_usd": Decimal("250.50")},
        "alert_manager": {"params": {"trade_loss_low_usd": 75}},
    }
