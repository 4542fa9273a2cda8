"""Every protocol the built-in plugins ship resolves and names only registered components."""

from __future__ import annotations

import pytest

from unlearnbench.config.protocol import load_protocol
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.host import create_host
from unlearnbench.training.engine import TrainRecipe

REGISTRY = Registry(create_host(autoload=True))
SHIPPED = REGISTRY.protocol_names()


def test_the_expected_protocols_ship() -> None:
    assert {
        "digits-quickstart",
        "cifar10-resnet18",
        "cifar100-resnet18",
        "svhn-resnet18",
        "tinyimagenet-resnet18",
    } <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_protocol_names_registered_components(name: str) -> None:
    protocol = load_protocol(REGISTRY.protocol_path(name), (), REGISTRY)
    assert protocol.name == name
    REGISTRY.create("dataset", protocol.data.dataset, protocol.data.params)
    REGISTRY.create("model", protocol.model.name, protocol.model.params)
    for pruner in protocol.prune.pruners:
        REGISTRY.create("pruner", pruner, protocol.prune.params.get(pruner))
    for unlearner in protocol.unlearn.unlearners:
        REGISTRY.create("unlearner", unlearner, protocol.unlearn.params.get(unlearner))
    for metric in protocol.evaluate.metrics:
        REGISTRY.create("metric", metric, protocol.evaluate.params.get(metric))
    if True in protocol.unprune.modes:
        for unpruner in protocol.unprune.unpruners:
            REGISTRY.create("unpruner", unpruner, protocol.unprune.params.get(unpruner))
    assert {spec.kind for spec in protocol.forget} == {"random", "class"}


@pytest.mark.parametrize("name", [n for n in SHIPPED if n != "digits-quickstart"])
def test_reference_recipe_is_the_reference_codes(name: str) -> None:
    path = REGISTRY.protocol_path(name)
    fast = load_protocol(path, (), REGISTRY)
    reference = load_protocol(path, [("train.recipe", "reference")], REGISTRY)
    expected = TrainRecipe(
        epochs=182,
        batch_size=256,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        schedule="step",
        milestones=(0.5, 0.75),
        gamma=0.1,
        augment=fast.recipe.augment,
        rewind_epoch=8,
        keep_best=True,
    )
    assert reference.recipe == expected
    assert not fast.recipe.keep_best
    assert reference.hash != fast.hash
    assert 0.95 in fast.prune.sparsities and 0.0 in fast.prune.sparsities
