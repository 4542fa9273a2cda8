"""Protocols (hash, --set overrides, type checks, value parsing) and forget-set drawing."""

from __future__ import annotations

import copy
import datetime
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from unlearnbench_datasets.digits import Digits

from unlearnbench.cli import cli
from unlearnbench.config.protocol import (
    ForgetSpec,
    PoolsSection,
    apply_override,
    load_protocol,
    parse_override_value,
    protocol_hash,
    read_protocol_file,
    resolve,
)
from unlearnbench.data.forget import draw_forget_set, retain_indices
from unlearnbench.data.images import ImageSplit
from unlearnbench.errors import InvalidValueError, UnknownChoiceError, UnlearnbenchError
from unlearnbench.hashing import sha256_indices
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.host import ONLY_PLUGINS_ENV, create_host

QUICKSTART = "digits-quickstart"


@pytest.fixture(scope="module")
def registry() -> Registry:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(ONLY_PLUGINS_ENV, raising=False)
        return Registry(create_host(autoload=True))


@pytest.fixture(scope="module")
def path(registry: Registry) -> Path:
    return registry.protocol_path(QUICKSTART)


@pytest.fixture(scope="module")
def base_hash(path: Path, registry: Registry) -> str:
    return load_protocol(path, (), registry).hash


# --------------------------------------------------------------------------------------------
# The protocol hash
# --------------------------------------------------------------------------------------------
def test_hash_is_stable(path: Path, registry: Registry, base_hash: str) -> None:
    again = load_protocol(path, (), registry)
    assert again.hash == base_hash
    assert len(base_hash) == 64 and int(base_hash, 16) >= 0
    assert again.short_hash == base_hash[:12]
    assert protocol_hash(read_protocol_file(path)) == base_hash
    # Key order in the file does not matter: the hash is over canonical JSON.
    raw = read_protocol_file(path)
    assert protocol_hash(dict(reversed(list(raw.items())))) == base_hash


SELECTION_OVERRIDES = [
    ("prune.pruners", ["omp", "random"]),
    ("prune.sparsities", [0.5, 0.8]),
    ("unlearn.unlearners", ["ft"]),
    ("evaluate.metrics", ["ua", "ra"]),
    ("seeds", [1, 2, 3]),
    ("unprune.modes", [False]),
]


@pytest.mark.parametrize(("key", "value"), SELECTION_OVERRIDES)
def test_hash_ignores_selection_fields(
    path: Path, registry: Registry, base_hash: str, key: str, value: Any
) -> None:
    loaded = load_protocol(path, [(key, value)], registry)
    assert loaded.hash == base_hash
    # The override did take effect.
    section, _, field = key.partition(".")
    resolved = getattr(getattr(loaded, section), field) if field else getattr(loaded, section)
    assert list(resolved) == value


def test_hash_ignores_all_selection_fields_at_once(path: Path, registry: Registry, base_hash: str) -> None:
    assert load_protocol(path, SELECTION_OVERRIDES, registry).hash == base_hash


CONTENT_OVERRIDES = [
    ("train.epochs", 3),
    ("recipes.default.lr", 0.1),
    ("data.limit", 300),
    ("data.params.test_fraction", 0.3),
    ("model.params.width", 8),
    ("unlearn.params.ft.epochs", 2),
    ("unlearn.params.l1-sparse.alpha", 1e-3),
    ("forget.class0.classes", [1]),
    ("forget.random10.seed", 7),
    ("prune.scope", "conv+linear"),
    ("evaluate.params.mia-efficacy.c", 1.0),
    ("description", "another description"),
]


@pytest.mark.parametrize(("key", "value"), CONTENT_OVERRIDES)
def test_hash_changes_with_content(
    path: Path, registry: Registry, base_hash: str, key: str, value: Any
) -> None:
    loaded = load_protocol(path, [(key, value)], registry)
    assert loaded.hash != base_hash
    # And it is stable for the same override.
    assert load_protocol(path, [(key, value)], registry).hash == loaded.hash


def test_overrides_reach_the_resolved_protocol(path: Path, registry: Registry) -> None:
    loaded = load_protocol(
        path,
        [("train.epochs", 3), ("recipes.default.lr", 0.2), ("forget.random10.fraction", 0.25)],
        registry,
    )
    assert loaded.recipe.epochs == 3
    assert loaded.recipe.lr == 0.2
    assert next(s for s in loaded.forget if s.name == "random10").fraction == 0.25
    # The file itself is untouched.
    assert (
        load_protocol(path, (), registry).recipe.epochs
        == read_protocol_file(path)["recipes"]["default"]["epochs"]
    )


MINIMAL_PROTOCOL = """
name = "core-minimal"
version = 1
[data]
dataset = "digits"
[model]
name = "small-cnn"
[recipes.default]
epochs = 1
[[forget]]
name = "r"
kind = "random"
fraction = 0.1
"""


@pytest.mark.parametrize(
    ("key", "value"),
    [("evaluate.metrics", ["ua"]), ("prune.pruners", ["omp"]), ("unlearn.unlearners", ["ft"])],
)
def test_hash_ignores_selection_fields_of_a_missing_section(
    tmp_path: Path, registry: Registry, key: str, value: Any
) -> None:
    file = tmp_path / "core-minimal.toml"
    file.write_text(MINIMAL_PROTOCOL)
    plain = load_protocol(file, (), registry)
    selected = load_protocol(file, [(key, value)], registry)
    assert selected.hash == plain.hash


# --------------------------------------------------------------------------------------------
# --set keys and values
# --------------------------------------------------------------------------------------------
UNKNOWN_KEYS = [
    ("nosuch", UnknownChoiceError, "'nosuch'"),
    ("nosuch.epochs", UnknownChoiceError, "'nosuch'"),
    ("train.epoch", UnknownChoiceError, "'epoch'"),
    ("data.nosuch", UnknownChoiceError, "'nosuch'"),
    ("prune.nosuch", UnknownChoiceError, "'nosuch'"),
    ("evaluate.nosuch", UnknownChoiceError, "'nosuch'"),
    ("unlearn.params.ft.nosuch", UnknownChoiceError, "'nosuch'"),
    ("unlearn.params.nosuch.epochs", UnknownChoiceError, "'nosuch'"),
    ("prune.params.nosuch.rewind", UnknownChoiceError, "'nosuch'"),
    ("evaluate.params.mia-efficacy.nosuch", UnknownChoiceError, "'nosuch'"),
    ("model.params.nosuch", UnknownChoiceError, "'nosuch'"),
    ("data.params.nosuch", UnknownChoiceError, "'nosuch'"),
    ("forget.nosuch.fraction", UnknownChoiceError, "'nosuch'"),
    ("forget.class0.nosuch", UnknownChoiceError, "'nosuch'"),
    ("recipes.nosuch.epochs", UnknownChoiceError, "'nosuch'"),
    ("recipes.default.nosuch", UnknownChoiceError, "'nosuch'"),
    ("unlearn.params.ft", InvalidValueError, "unlearn.params.ft"),
    ("seeds.first", InvalidValueError, "seeds.first"),
    ("train", InvalidValueError, "'train'"),
]


@pytest.mark.parametrize(("key", "error", "named"), UNKNOWN_KEYS)
def test_apply_override_rejects_unknown_keys(
    path: Path, registry: Registry, key: str, error: type[Exception], named: str
) -> None:
    raw = read_protocol_file(path)
    before = copy.deepcopy(raw)
    with pytest.raises(error) as caught:
        apply_override(raw, key, 1, registry)
    assert named in str(caught.value)
    assert raw == before


def test_unknown_key_errors_list_the_valid_choices(path: Path, registry: Registry) -> None:
    raw = read_protocol_file(path)
    cases = {
        "nosuch": ["data", "train", "unlearn", "seeds"],
        "train.epoch": ["epochs", "lr", "recipe"],
        "unlearn.params.ft.nosuch": ["epochs", "lr"],
        "unlearn.params.nosuch.epochs": ["ft", "ga", "retrain", "l1-sparse"],
        "forget.nosuch.fraction": ["class0", "random10"],
        "model.params.nosuch": ["width"],
    }
    for key, choices in cases.items():
        with pytest.raises(UnknownChoiceError) as caught:
            apply_override(raw, key, 1, registry)
        for choice in choices:
            assert choice in caught.value.choices, (key, choice)


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("train.epochs", "abc", "epochs: expected int, got 'abc'"),
        ("train.epochs", 2.5, "epochs: expected int, got 2.5"),
        ("train.augment", "yes", "augment: expected bool, got 'yes'"),
        ("recipes.default.lr", "fast", "lr: expected float, got 'fast'"),
        ("data.limit", "all", "data.limit: expected int, got 'all'"),
        ("data.holdout_fraction", [0.1], "holdout_fraction: expected float"),
        ("prune.sparsities", 0.5, "prune.sparsities: expected a list, got 0.5"),
        ("prune.sparsities", ["a"], "prune.sparsities[0]: expected float, got 'a'"),
        ("seeds", [1, "two"], "seeds: expected a non-empty list of integers"),
        ("seeds", [], "seeds: expected a non-empty list of integers"),
        ("forget.class0.classes", "0", "classes: expected a list"),
        ("train.recipe", "nosuch", "'nosuch'"),
    ],
)
def test_wrong_types_are_rejected_when_resolving(
    path: Path, registry: Registry, key: str, value: Any, named: str
) -> None:
    raw = read_protocol_file(path)
    apply_override(raw, key, value, registry)
    with pytest.raises(UnlearnbenchError) as caught:
        resolve(raw, str(path))
    assert named in str(caught.value)


def test_a_version_that_is_not_an_int_is_rejected(path: Path) -> None:
    raw = read_protocol_file(path)
    raw["version"] = "1"
    with pytest.raises(UnlearnbenchError, match="version: expected int"):
        resolve(raw, str(path))


def test_wrong_literal_is_rejected_with_the_choices(path: Path, registry: Registry) -> None:
    with pytest.raises(UnknownChoiceError) as caught:
        load_protocol(path, [("forget.class0.kind", "sometimes")], registry)
    assert caught.value.value == "sometimes"
    assert caught.value.choices == ["class", "per-class", "random"]


def test_unknown_top_level_key_in_a_file_is_rejected(tmp_path: Path) -> None:
    file = tmp_path / "p.toml"
    file.write_text(MINIMAL_PROTOCOL + '\nextra = "x"\n')
    with pytest.raises(UnknownChoiceError, match="'extra'"):
        load_protocol(file)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3),
        ("-2", -2),
        ("0", 0),
        ("0.1", 0.1),
        ("1e-3", 1e-3),
        ("5.0", 5.0),
        ("true", True),
        ("false", False),
        ("[1, 2]", [1, 2]),
        ("[0.5,0.9]", [0.5, 0.9]),
        ('["ft", "ga"]', ["ft", "ga"]),
        ("[true, false]", [True, False]),
        ("[ft, l1-sparse]", ["ft", "l1-sparse"]),
        ("[retrain]", ["retrain"]),
        ("[ft, 3]", ["ft", 3]),
        ('"3"', "3"),
        ("abc", "abc"),
        ("omp", "omp"),
        ("l1-sparse", "l1-sparse"),
        ("cifar10-jpeg75", "cifar10-jpeg75"),
        ("conv+linear", "conv+linear"),
        ("hello world", "hello world"),
        ("True", "True"),
    ],
)
def test_parse_override_value(text: str, expected: Any) -> None:
    value = parse_override_value(text)
    assert value == expected
    assert type(value) is type(expected)
    if isinstance(expected, list):
        assert [type(v) for v in value] == [type(v) for v in expected]


def test_parse_override_value_reads_toml_dates_as_dates() -> None:
    # Documented behaviour (a TOML literal wins): a date-like string is not kept as a string.
    assert parse_override_value("2024-01-01") == datetime.date(2024, 1, 1)


# --------------------------------------------------------------------------------------------
# Forget sets
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pool() -> ImageSplit:
    return Digits().load(None, download=False).train


def spec(**fields: Any) -> ForgetSpec:
    return ForgetSpec(name=fields.pop("name", "f"), **fields)


@pytest.mark.parametrize("classes", [(0,), (3,), (1, 7)])
def test_class_wise_takes_exactly_the_class_examples(pool: ImageSplit, classes: tuple[int, ...]) -> None:
    forget = draw_forget_set(spec(kind="class", classes=classes), pool, 10)
    expected = torch.nonzero(torch.isin(pool.labels, torch.tensor(classes))).flatten()
    assert torch.equal(forget.indices, expected)
    assert forget.forgotten_classes == classes
    assert set(pool.labels[forget.indices].tolist()) == set(classes)


@pytest.mark.parametrize(("fraction", "seed"), [(0.1, 0), (0.1, 1), (0.37, 5)])
def test_random_takes_round_fraction_distinct_indices(pool: ImageSplit, fraction: float, seed: int) -> None:
    forget = draw_forget_set(spec(kind="random", fraction=fraction, seed=seed), pool, 10)
    n = len(pool)
    assert len(forget.indices) == round(fraction * n)
    assert len(set(forget.indices.tolist())) == len(forget.indices)
    assert int(forget.indices.min()) >= 0 and int(forget.indices.max()) < n
    assert torch.equal(forget.indices, forget.indices.sort().values)
    assert forget.forgotten_classes == ()
    # Not just the first rows of the pool.
    assert not torch.equal(forget.indices, torch.arange(len(forget.indices)))


def test_random_count_and_seed(pool: ImageSplit) -> None:
    a = draw_forget_set(spec(kind="random", count=50, seed=0), pool, 10)
    b = draw_forget_set(spec(kind="random", count=50, seed=1), pool, 10)
    assert len(a.indices) == len(b.indices) == 50
    assert not torch.equal(a.indices, b.indices)
    assert a.sha256 != b.sha256


def test_per_class_takes_the_fraction_of_each_class(pool: ImageSplit) -> None:
    forget = draw_forget_set(spec(kind="per-class", fraction=0.2, classes=(2, 5), seed=3), pool, 10)
    labels = pool.labels[forget.indices]
    assert set(labels.tolist()) == {2, 5}
    for cls in (2, 5):
        members = int((pool.labels == cls).sum())
        assert int((labels == cls).sum()) == round(0.2 * members)
    assert len(set(forget.indices.tolist())) == len(forget.indices)
    assert forget.forgotten_classes == ()
    counted = draw_forget_set(spec(kind="per-class", count=4, classes=(2, 5)), pool, 10)
    assert [int((pool.labels[counted.indices] == c).sum()) for c in (2, 5)] == [4, 4]


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "class", "classes": (4,)},
        {"kind": "random", "fraction": 0.1, "seed": 2},
        {"kind": "per-class", "fraction": 0.5, "classes": (0, 9), "seed": 1},
    ],
)
def test_same_spec_same_sha256_and_a_partition(pool: ImageSplit, fields: dict) -> None:
    first = draw_forget_set(spec(**fields), pool, 10)
    second = draw_forget_set(spec(**fields), pool, 10)
    assert torch.equal(first.indices, second.indices)
    assert first.sha256 == second.sha256 == sha256_indices(first.indices)
    assert len(first.sha256) == 64
    retain = retain_indices(len(pool), first)
    forget_set, retain_set = set(first.indices.tolist()), set(retain.tolist())
    assert not forget_set & retain_set
    assert forget_set | retain_set == set(range(len(pool)))
    assert torch.equal(retain, retain.sort().values)


def test_forget_sha256_depends_on_the_indices_only(pool: ImageSplit) -> None:
    a = draw_forget_set(spec(name="a", kind="class", classes=(3,)), pool, 10)
    b = draw_forget_set(spec(name="b", kind="per-class", fraction=1.0, classes=(3,)), pool, 10)
    c = draw_forget_set(spec(kind="class", classes=(4,)), pool, 10)
    assert a.sha256 == b.sha256
    assert a.sha256 != c.sha256


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"kind": "class", "classes": (10,)}, "class 10"),
        ({"kind": "class", "classes": (-1,)}, "class -1"),
        ({"kind": "per-class", "fraction": 0.1, "classes": (0, 12)}, "class 12"),
        ({"kind": "class"}, "needs classes"),
        ({"kind": "random", "count": 5, "fraction": 0.1}, "not both"),
        ({"kind": "random", "fraction": 0.0001}, "0 examples"),
        ({"kind": "random", "count": 10**6}, "1000000 examples"),
        ({"kind": "random"}, "0 examples"),
    ],
)
def test_invalid_forget_specs_are_rejected(pool: ImageSplit, fields: dict, named: str) -> None:
    with pytest.raises(InvalidValueError, match=named):
        draw_forget_set(spec(**fields), pool, 10)


@pytest.mark.parametrize(
    "fields",
    [{"kind": "class", "classes": (0, 0)}, {"kind": "per-class", "fraction": 0.5, "classes": (0, 0)}],
)
def test_repeated_classes_do_not_repeat_forget_indices(pool: ImageSplit, fields: dict) -> None:
    try:
        forget = draw_forget_set(spec(**fields), pool, 10)
    except InvalidValueError:
        return  # refusing the spec is fine too
    assert len(set(forget.indices.tolist())) == len(forget.indices)


# --------------------------------------------------------------------------------------------
# [pools]: defaults, --set pools.*, bad values named
# --------------------------------------------------------------------------------------------
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
        ("pools.seed_base", -1, InvalidValueError, "pools.seed_base must be >= 0"),
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
