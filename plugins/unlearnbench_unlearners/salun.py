"""SalUn: random labelling restricted to the weights salient to the forget loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench.api import UnlearnBudget, Unlearner, UnlearnTask
from unlearnbench_unlearners.random_label import run_rl


class SalUn(Unlearner):
    """SalUn (Fan et al., ICLR 2024; Unlearn-Saliency ``Classification/generate_mask.py`` and
    ``main_random.py --unlearn RL --mask_path``): the saliency map is |sum over D_f batches of the
    gradient of -CE| in eval mode, ranked over all parameters (conv, BN, fc) and the top
    ``density`` fraction kept (the code's top fraction, not the paper's threshold); then RL where
    only salient weights move (gradients masked). After every step non-salient weights are reset
    to their starting values and their optimiser state (momentum) zeroed, the reference's fix of
    PR #33 (2026) for weight decay and momentum leaking into them (issue #32);
    ``pre_fix=true`` reproduces the published numbers' behaviour (gradient masking only).
    Defaults: density 0.5, lr 0.013, 10 epochs (the README's CIFAR-10 example), batch 256, SGD
    momentum 0.9, wd 5e-4. Deviation: on a pruned model, pruned weights are not ranked (they
    cannot move), so the kept fraction is of the trainable weights."""

    name = "salun"
    version = 1

    @dataclass(frozen=True)
    class Params(UnlearnBudget):
        lr: float = 0.013
        density: float = 0.5
        mixed: bool = False
        pre_fix: bool = False

    def saliency_mask(self, model: nn.Module, task: UnlearnTask) -> dict[str, torch.Tensor]:
        """Boolean masks of the salient weights, by parameter name."""
        engine = task.engine
        model.eval()
        params = dict(model.named_parameters())
        grads = {n: torch.zeros_like(p) for n, p in params.items()}
        with torch.enable_grad():
            for x, y in engine.batches(task.forget, self.params.batch_size, None, shuffle=False):
                model.zero_grad(set_to_none=True)
                (-F.cross_entropy(model(x), y)).backward()
                for n, p in params.items():
                    if p.grad is not None:
                        grads[n] += p.grad
        model.zero_grad(set_to_none=True)
        scores = {n: g.abs() for n, g in grads.items()}
        if task.mask is not None:
            for n, keep in task.mask.tensors.items():
                scores[n] = scores[n].masked_fill(~keep.to(scores[n].device), -1.0)
        flat = torch.cat([s.reshape(-1) for s in scores.values()])
        trainable = int((flat >= 0).sum())
        k = round(self.params.density * trainable)
        keep = torch.zeros_like(flat, dtype=torch.bool)
        if k > 0:
            keep[torch.topk(flat, k).indices] = True
        out, start = {}, 0
        for n, s in scores.items():
            out[n] = keep[start : start + s.numel()].view_as(s)
            start += s.numel()
        return out

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        salient = self.saliency_mask(model, task)
        params = dict(model.named_parameters())
        frozen = {n: ~salient[n] for n in params}
        start = {n: p.detach().clone() for n, p in params.items()}

        def mask_grads(m: nn.Module, optimizer: torch.optim.Optimizer) -> None:
            for n, p in params.items():
                if p.grad is not None:
                    p.grad.masked_fill_(frozen[n], 0.0)

        def reset_frozen(m: nn.Module, optimizer: torch.optim.Optimizer) -> None:
            with torch.no_grad():
                for n, p in params.items():
                    p.copy_(torch.where(frozen[n], start[n], p))
                    for value in optimizer.state.get(p, {}).values():
                        if torch.is_tensor(value) and value.shape == p.shape:
                            value.masked_fill_(frozen[n], 0.0)

        hooks = {"before_step": mask_grads}
        if not self.params.pre_fix:
            hooks["after_step"] = reset_frozen
        return run_rl(model, task, self.params, self.params.mixed, "salun", **hooks)
