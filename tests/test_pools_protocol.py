"""The protocol's ``[pools]`` section: defaults, ``--set pools.*`` overrides, bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from unlearnbench.cli import cli
from unlearnbench.config.protocol import PoolsSection, load_protocol
from unlearnbench.errors import InvalidValueError, UnknownChoiceError
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.host import ONLY_PLUGINS_ENV, create_host


@pytest.fixture(scope="module")
def registry() -> Registry:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(ONLY_PLUGINS_ENV, raising=False)
        return Registry(create_host(autoload=True))


@pytest.fixture(scope="module")
def path(registry: Registry) -> Path:
    return registry.protocol_path("digits-quickstart")


def test_pools_default_and_leave_the_hash_alone(path: Path, registry: Registry) -> None:
    protocol = load_protocol(path, (), registry)
    assert protocol.pools == PoolsSection()
    assert protocol.pools.size == 8 and protocol.pool_recipe is None
    # the defaults are not written into the content, so existing protocol hashes do not move
    assert "pools" not in protocol.raw


def test_set_pools_fields(path: Path, registry: Registry) -> None:
    base = load_protocol(path, (), registry)
    sets = [("pools.size", 4), ("pools.shadow_size", 16), ("pools.recipe", "default")]
    protocol = load_protocol(path, sets, registry)
    assert (protocol.pools.size, protocol.pools.shadow_size) == (4, 16)
    assert protocol.pool_recipe == protocol.recipe
    assert protocol.hash != base.hash  # pool size changes results, so it is in the hash
    assert load_protocol(path, [("pools.size", 4)], registry).hash != base.hash


@pytest.mark.parametrize(
    ("key", "value", "error", "named"),
    [
        ("pools.size", 1, InvalidValueError, "pools.size must be >= 2"),
        ("pools.shadow_size", 1, InvalidValueError, "pools.shadow_size 0 or >= 2"),
        ("pools.shadow_fraction", 1.0, InvalidValueError, "pools.shadow_fraction must be in (0, 1)"),
        ("pools.size", "many", InvalidValueError, "pools.size: expected int, got 'many'"),
        ("pools.recipe", "nosuch", UnknownChoiceError, "'nosuch'; valid choices: default"),
        ("pools.nosuch", 1, UnknownChoiceError, "'nosuch'; valid choices: recipe, seed_base"),
        ("pools.params.x", 1, UnknownChoiceError, "'params'"),
    ],
)
def test_bad_pool_values_are_named(
    path: Path, registry: Registry, key: str, value: object, error: type[Exception], named: str
) -> None:
    with pytest.raises(error) as caught:
        load_protocol(path, [(key, value)], registry)
    assert named in str(caught.value)


def test_cli_rejects_a_bad_pool_size_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["run", "digits-quickstart", "--set", "pools.size=1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "pools.sizemustbe>=2" in "".join(result.stderr.split())  # rich may wrap the line
