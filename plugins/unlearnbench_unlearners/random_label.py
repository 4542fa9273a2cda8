"""Random labelling (RL): fine-tune on the forget set with random labels and on the retain set."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from unlearnbench.api import UnlearnBudget, Unlearner, UnlearnTask
from unlearnbench_unlearners._common import random_label_batches, rl_steps_per_epoch


class RandomLabel(Unlearner):
    """RL (Golatkar et al., 2020, as implemented in SalUn, Fan et al., ICLR 2024;
    Unlearn-Saliency ``Classification/unlearn/RL.py``): each epoch one pass over D_f with labels
    drawn uniformly from all K classes (the true label may be drawn), then one pass over D_r
    (``mixed=false``, the code's CIFAR-10/SVHN path); ``mixed=true`` concatenates and shuffles them
    (its CIFAR-100/Tiny-ImageNet path). Defaults: README 10 epochs; lr 0.01 (``unlearn_lr``), batch
    256, SGD momentum 0.9, wd 5e-4 (the shared optimiser). Deviation: the random labels come from
    the run's seeded generator (the reference draws them unseeded)."""

    name = "rl"
    version = 1

    @dataclass(frozen=True)
    class Params(UnlearnBudget):
        mixed: bool = False

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        return run_rl(model, task, self.params, self.params.mixed, description="rl")


def run_rl(
    model: nn.Module, task: UnlearnTask, budget: UnlearnBudget, mixed: bool, description: str, **hooks
):
    """RL training of ``model`` in place under ``task.mask``; ``hooks`` go to ``Engine.fit_batches``."""
    engine = task.engine
    recipe = budget.recipe(task.recipe)
    generator = engine.generator(task.seed)
    engine.fit_batches(
        model,
        recipe,
        lambda _: random_label_batches(
            engine, task.forget, task.retain, recipe, task.num_classes, generator, mixed
        ),
        steps_per_epoch=rl_steps_per_epoch(task.forget, task.retain, recipe.batch_size, mixed),
        mask=task.mask,
        description=description,
        **hooks,
    )
    return model
