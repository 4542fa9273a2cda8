"""Steps the pruner plugins share: fresh initialisations, and rewinding and retraining under a mask."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from unlearnbench.api import Mask, PruneOutcome, Pruner, PruneTask, check_sparsity


def fresh_model(task: PruneTask) -> nn.Module:
    """``task.new_model()`` built under ``torch.manual_seed(task.seed)`` (the global CPU RNG is restored)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(task.seed)
        model = task.new_model()
    return task.engine.prepare(model)


def rewind_and_retrain(
    model: nn.Module,
    mask: Mask,
    task: PruneTask,
    *,
    rewind: bool,
    retrain: bool,
    epochs: int | None = None,
    seed: int | None = None,
    description: str = "retrain",
) -> None:
    """Optionally load ``task.rewind_state``, then train under ``mask``; pruned weights end at zero.

    ``epochs`` overrides ``task.recipe.epochs`` (None keeps it); ``seed`` defaults to ``task.seed``.
    After rewinding, the LR schedule starts ``recipe.rewind_epoch`` epochs in, as the reference
    steps its scheduler ``rewind_epoch`` times before retraining (Unlearn-Sparse ``main_imp.py``);
    the retraining still runs the recipe's full length.
    """
    rewound = rewind and task.rewind_state is not None
    if rewound:
        model.load_state_dict(task.rewind_state)
    if retrain:
        recipe = task.recipe if epochs is None else dataclasses.replace(task.recipe, epochs=epochs)
        if recipe.epochs > 0:
            task.engine.fit(
                model,
                task.data,
                recipe,
                seed=task.seed if seed is None else seed,
                mask=mask,
                description=description,
                val=task.val,
                start_epoch=recipe.rewind_epoch if rewound else 0,
            )
    mask.apply_(model)


class RewindRetrainPruner(Pruner):
    """A one-shot pruner followed by the reference's ``rewind_lt`` step: the survivors are reset to
    ``task.rewind_state`` (``rewind``) and trained under the mask with ``task.recipe``
    (``retrain``)."""

    @dataclass(frozen=True)
    class Params:
        rewind: bool = True
        retrain: bool = True

    def prune(self, model: nn.Module, task: PruneTask) -> PruneOutcome:
        mask = self.make_mask(model, task)
        rewind_and_retrain(
            model,
            mask,
            task,
            rewind=self.params.rewind,
            retrain=self.params.retrain,
            description=f"{self.name} retrain",
        )
        return PruneOutcome(model, mask)


class AtInitPruner(Pruner):
    """A pruner that scores a fresh initialisation (``at_init``, pruning at initialisation) and
    trains it under the mask; without ``at_init`` it scores the given model and rewinds and
    retrains like OMP. Its ``Params`` carry ``at_init``, ``rewind`` and ``retrain``."""

    def prunes_at_init(self) -> bool:
        return bool(self.params.at_init)

    def prune(self, model: nn.Module, task: PruneTask) -> PruneOutcome:
        check_sparsity(task.sparsity)
        at_init = self.params.at_init
        if at_init:
            model = fresh_model(task)
        mask = self.make_mask(model, task)
        rewind_and_retrain(
            model,
            mask,
            task,
            rewind=self.params.rewind and not at_init,
            retrain=self.params.retrain,
            description=f"{self.name} train",
        )
        return PruneOutcome(model, mask)
