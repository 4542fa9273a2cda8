"""Identities without silent staleness: a component's key covers the project modules it imports
(transitively), and a data copy's key covers its content in storage order."""

from __future__ import annotations

import sys
import textwrap
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from unlearnbench.api import DatasetPlugin, DatasetSplits, ImageSplit, hookimpl
from unlearnbench.config.protocol import load_protocol
from unlearnbench.data.fingerprint import cached_fingerprint, content_sha256
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.host import create_host
from unlearnbench.run.pipeline import Pipeline, RunSettings
from unlearnbench.run.plan import ComponentInfo, PlanInputs, plan
from unlearnbench.run.sources import clear_source_cache, source_modules

pytestmark = pytest.mark.usefixtures("one_thread_and_plugins")

PROTOCOL = "digits-quickstart"

# --------------------------------------------------------------------------------------------
# Source identities
# --------------------------------------------------------------------------------------------
PACKAGE = "ub_stale_pkg"
FILES = {
    "__init__.py": """
        from unlearnbench.api import hookimpl
        from ub_stale_pkg.method import HelperFT
        from ub_stale_pkg.other import PlainFT


        @hookimpl
        def unlearnbench_register_unlearners():
            return [HelperFT, PlainFT]
    """,
    "_helper.py": """
        EPOCHS = 1
    """,
    "method.py": '''
        from unlearnbench_unlearners.finetune import FineTune


        def epochs():
            from ub_stale_pkg._helper import EPOCHS  # a function-level import counts too

            return EPOCHS


        class HelperFT(FineTune):
            """Fine-tuning whose epoch count a helper module gives (test component)."""

            name = "ub-helper-ft"
    ''',
    "other.py": '''
        from unlearnbench_unlearners.finetune import FineTune


        class PlainFT(FineTune):
            """Fine-tuning in a sibling module that imports no helper (test component)."""

            name = "ub-plain-ft"
    ''',
}


@pytest.fixture
def stale_package(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "src"
    (root / PACKAGE).mkdir(parents=True)
    for name, text in FILES.items():
        (root / PACKAGE / name).write_text(textwrap.dedent(text).lstrip())
    sys.path.insert(0, str(root))
    clear_source_cache()
    try:
        yield root / PACKAGE
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]
        clear_source_cache()


def planned_keys(registry: Registry) -> dict[tuple[Any, ...], str]:
    """Node keys of the quickstart with both test unlearners, from made-up data sizes, by
    (stage, unlearner, forget set, seed)."""
    overrides = [
        ("unlearn.unlearners", ["ub-helper-ft", "ub-plain-ft"]),
        ("unprune.modes", [False]),
        ("evaluate.metrics", ["ua"]),
        ("prune.sparsities", [0.9]),
    ]
    protocol = load_protocol(registry.protocol_path(PROTOCOL), overrides, registry)
    components = [registry.create("dataset", "digits"), registry.create("model", "small-cnn")]
    components += [registry.create("pruner", n) for n in protocol.prune.pruners]
    components += [registry.create("unlearner", n) for n in [*protocol.unlearn.unlearners, "retrain"]]
    components += [registry.create("metric", n) for n in protocol.evaluate.metrics]
    inputs = PlanInputs(
        data_id={"copy": "x", "sizes": [1000, 0, 300]},
        forget_sha256={f.name: f.name * 8 for f in protocol.forget},
        forget_size={f.name: 100 for f in protocol.forget},
        components={(c.kind, c.name): ComponentInfo.of(c) for c in components},
    )
    graph = plan(protocol, inputs)
    keys = {(n.stage, n.unlearner, n.forget, n.seed): n.key for n in graph.nodes.values()}
    assert len(keys) == len(graph.nodes)
    return keys


def test_a_component_identity_covers_its_helpers_and_the_engine_but_not_siblings() -> None:
    names = dict(source_modules("unlearnbench_unpruners.reprune"))
    assert {"unlearnbench_unpruners._common", "unlearnbench.training.engine"} <= set(names)
    assert "unlearnbench_unpruners.control" not in names  # a sibling the package __init__ imports
    assert not any(n.startswith(("torch", "numpy")) for n in names)  # third-party left out


def test_editing_a_helper_changes_exactly_the_dependent_nodes(stale_package: Path) -> None:
    plugin = __import__(PACKAGE)
    registry = Registry(create_host(autoload=True, plugins=[plugin]))
    before = planned_keys(registry)
    clear_source_cache()
    assert planned_keys(registry) == before  # stable when nothing changed

    (stale_package / "other_notes.py").write_text("NOTE = 'unrelated'\n")
    (stale_package / "__init__.py").write_text((stale_package / "__init__.py").read_text() + "\n# edit\n")
    clear_source_cache()
    assert planned_keys(registry) == before  # unrelated files and the registering __init__

    (stale_package / "_helper.py").write_text("EPOCHS = 2\n")
    clear_source_cache()
    after = planned_keys(registry)
    changed = {name for name in before if before[name] != after[name]}
    assert changed, "editing a helper the component imports changed no key"
    assert {(stage, unlearner) for stage, unlearner, *_ in changed} == {
        ("unlearn", "ub-helper-ft"),
        ("evaluate", "ub-helper-ft"),
    }
    helper_nodes = {name for name in before if name[1] == "ub-helper-ft"}
    assert changed == helper_nodes  # every node of the edited component's rows, nothing else


# --------------------------------------------------------------------------------------------
# Data identities
# --------------------------------------------------------------------------------------------
def digits_blob(order: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (torch.from_numpy(bunch.images) * (255 / 16)).round().to(torch.uint8)[:, None]
    labels = torch.from_numpy(bunch.target).long()
    train = torch.arange(400) if order is None else order
    return {"x": images[train], "y": labels[train], "tx": images[400:500], "ty": labels[400:500]}


class StoredCopy(DatasetPlugin):
    """Test data: the digits stored in ``ROOT/data.pt`` in whatever order the test wrote them;
    the copy is always called ``stored`` (identified by name alone, the old identity)."""

    name = "ub-stored-copy"
    version = 1

    @dataclass(frozen=True)
    class Params:
        pass

    def load(self, root: Path | None, *, download: bool) -> DatasetSplits:
        assert root is not None
        blob = torch.load(root / "data.pt", weights_only=True)
        return DatasetSplits(
            train=ImageSplit(blob["x"], blob["y"]),
            test=ImageSplit(blob["tx"], blob["ty"]),
            classes=tuple(str(d) for d in range(10)),
            mean=(0.5,),
            std=(0.3,),
            copy="stored",
            location=str(root),
        )


def stored_copy_plugin() -> types.ModuleType:
    plugin = types.ModuleType("ub_stored_copy")

    @hookimpl
    def unlearnbench_register_datasets() -> list[type]:
        return [StoredCopy]

    plugin.unlearnbench_register_datasets = unlearnbench_register_datasets  # type: ignore[attr-defined]
    return plugin


def stored_graph(root: Path, out: Path) -> Any:
    registry = Registry(create_host(autoload=True, plugins=[stored_copy_plugin()]))
    overrides = [
        ("data.dataset", "ub-stored-copy"),
        ("unlearn.unlearners", ["ft"]),
        ("unprune.modes", [False]),
        ("evaluate.metrics", ["ua"]),
    ]
    protocol = load_protocol(registry.protocol_path(PROTOCOL), overrides, registry)
    return Pipeline(protocol, registry, RunSettings(out=out, device="cpu", data_root=root))


def test_a_reordered_copy_is_another_copy(tmp_path: Path) -> None:
    root = tmp_path / "copy"
    root.mkdir()
    torch.save(digits_blob(), root / "data.pt")
    first = stored_graph(root, tmp_path / "a")
    torch.save(digits_blob(), root / "data.pt")  # rewritten, same content: same identity
    again = stored_graph(root, tmp_path / "b")
    assert again.graph.nodes.keys() == first.graph.nodes.keys()

    torch.save(digits_blob(torch.randperm(400, generator=torch.Generator().manual_seed(0))), root / "data.pt")
    shuffled = stored_graph(root, tmp_path / "c")
    trained = {n.key for n in shuffled.graph.nodes.values() if n.stage == "original"}
    assert trained and not trained & set(first.graph.nodes), "the reordered copy reuses the keys"
    assert not set(shuffled.graph.nodes) & set(first.graph.nodes)  # every node trains on the data
    assert shuffled.ctx.data_id()["copy"] == first.ctx.data_id()["copy"]  # the name alone is the same
    assert shuffled.ctx.data_id()["content"] != first.ctx.data_id()["content"]


def test_the_fingerprint_is_computed_once_per_copy_and_covers_the_order(tmp_path: Path) -> None:
    blob = digits_blob()
    train, test = ImageSplit(blob["x"], blob["y"]), ImageSplit(blob["tx"], blob["ty"])
    classes = tuple(str(d) for d in range(10))
    calls: list[int] = []

    def compute() -> str:
        calls.append(1)
        return content_sha256(train, test, classes)

    first = cached_fingerprint(tmp_path, "k" * 64, compute)
    assert cached_fingerprint(tmp_path, "k" * 64, compute) == first and len(calls) == 1
    flipped = ImageSplit(blob["x"].flip(0), blob["y"].flip(0))
    assert content_sha256(flipped, test, classes) != first


def test_a_cifar_pickle_copy_caches_its_fingerprint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_datasets import write_cifar10
    from unlearnbench_datasets import common
    from unlearnbench_datasets.cifar import CIFAR10

    write_cifar10(tmp_path)
    first = CIFAR10().load(tmp_path, download=False)
    assert first.fingerprint == content_sha256(first.train, first.test, first.classes)

    def refuse(*args: Any) -> str:
        raise AssertionError("the fingerprint was computed again")

    monkeypatch.setattr(common, "content_sha256", refuse)
    assert CIFAR10().load(tmp_path, download=False).fingerprint == first.fingerprint
