"""Un-pruning by relaxing the mask, unlearning in dense space and re-pruning on the retain set."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from unlearnbench.api import Mask, PruneOutcome, Unpruner, UnpruneTask
from unlearnbench_unpruners._common import Relax, finetune, relaxed_start


class RelaxUnlearnReprune(Unpruner):
    """Un-pruning (Xiao et al., 2025, "The Right to be Forgotten in Pruning", arXiv 2507.18725),
    reconstructed from the paper's description (its code has no un-pruning routine;
    ``unpruning.md`` §3.2):

    1. relax the topology (``relax``): the trained dense weights (``dense``), the sparse model with
       pruned weights at zero (``zero``; structured masks restart them at their initial values)
       or at the rewind-epoch weights (``rewind``);
    2. run the unlearner in dense space (no mask);
    3. re-score with the same pruner on the retain set and re-prune to the same sparsity. A
       prune-at-init pruner (SynFlow, SNIP with ``at_init``) scores the seeded initialisation
       ``new_model()``, as its gold topology does, not the unlearned weights (for the data-free
       SynFlow this reproduces the original mask). With ``replay`` the pruner's whole procedure
       runs on the retain set from the unlearned weights instead (IMP: every round, rewinding to
       the original run's rewind point and retraining on D_r; an at-init pruner then trains the
       initialisation, i.e. recomputes the gold);
    4. fine-tune under the new mask on the retain set (``finetune_epochs`` at ``finetune_lr``,
       SGD momentum 0.9, wd 5e-4, constant rate; 0 epochs skips it).

    Deviation: without ``replay``, iterative pruners re-prune in one shot at the final sparsity
    (the cheaper of the two readings of the paper). Structured pruners re-select filters with
    their own rule (``l1-filter``: per-layer L1 norms); see ``reprune-filter`` for filter scores
    on D_r.
    """

    name = "reprune"
    version = 2

    @dataclass(frozen=True)
    class Params:
        relax: Relax = "dense"
        replay: bool = False
        finetune_epochs: int = 5
        finetune_lr: float = 0.01

    def unprune(self, task: UnpruneTask) -> PruneOutcome:
        model = relaxed_start(task, self.params.relax)
        model = task.unlearner.unlearn(model, task.unlearn_task)
        if self.params.replay:
            outcome = task.pruner.prune(model, task.retain_prune_task)
            model, mask = outcome.model, outcome.mask
        else:
            mask = self.topology(model, task)
        finetune(
            model, mask, task, self.params.finetune_epochs, self.params.finetune_lr, "un-prune fine-tune"
        )
        return PruneOutcome(model, mask)

    def topology(self, model: nn.Module, task: UnpruneTask) -> Mask:
        """The pruner's mask on the retain set: of the initialisation for prune-at-init pruners,
        else of ``model``."""
        retain = task.retain_prune_task
        if task.pruner.prunes_at_init():
            return task.pruner.make_mask(retain.new_model(), retain)
        return task.pruner.make_mask(model, retain)
