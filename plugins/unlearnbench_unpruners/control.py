"""The control for un-pruning: the original mask, the same unlearning and fine-tuning budget."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from unlearnbench.api import PruneOutcome, Unpruner, UnpruneTask
from unlearnbench_unpruners._common import finetune, unlearn_sparse


class KeepMaskControl(Unpruner):
    """Control row for un-pruning (an unlearnbench design, from issue #10 and ``unpruning.md``
    §4): it keeps the original mask and spends the budget ``reprune`` spends, the row's unlearner
    (run inside the mask, as a plain sparse row) followed by ``finetune_epochs`` at
    ``finetune_lr`` on the retain set under the same mask (SGD momentum 0.9, wd 5e-4, constant
    rate). A table that sets ``reprune`` beside it separates the effect of a new topology from
    that of more fine-tuning. Its defaults equal ``reprune``'s; give both the same values.
    """

    name = "control"
    version = 1

    @dataclass(frozen=True)
    class Params:
        finetune_epochs: int = 5
        finetune_lr: float = 0.01

    def unprune(self, task: UnpruneTask) -> PruneOutcome:
        model = unlearn_sparse(copy.deepcopy(task.pruned_model), task, task.mask, dense_weights=True)
        finetune(
            model, task.mask, task, self.params.finetune_epochs, self.params.finetune_lr, "control fine-tune"
        )
        return PruneOutcome(model, task.mask)
