"""Random global unstructured pruning: the control for the score-based pruners."""

from __future__ import annotations

import torch
from torch import nn

from unlearnbench.api import PruneTask
from unlearnbench_pruners._common import RewindRetrainPruner


class RandomPruner(RewindRetrainPruner):
    """Uniformly random global pruning, as Jia et al.'s ``main_imp.py --random_prune``
    (``prune.global_unstructured(RandomUnstructured)``).

    Scores are i.i.d. uniform draws from a CPU generator seeded by ``task.seed`` (parameters in
    sorted-name order), so the kept set is a uniformly random subset of exactly
    ``kept_count(total, s)`` scoped weights that depends only on the seed and the shapes. Then,
    as OMP, the survivors are rewound to ``task.rewind_state`` (``rewind``) and retrained under
    the mask with ``task.recipe`` (``retrain``), the LR schedule advanced by ``rewind_epoch`` as OMP.
    """

    name = "random"
    version = 2

    def scores(self, model: nn.Module, task: PruneTask) -> dict[str, torch.Tensor]:
        params = dict(model.named_parameters())
        generator = torch.Generator().manual_seed(task.seed)
        return {
            name: torch.rand(params[name].shape, generator=generator, dtype=torch.float64)
            for name in sorted(task.scope)
        }
