"""The training engine every stage that trains shares: GPU-resident data, on-device
augmentation, SGD (with momentum) or Adam, step/cosine/one-cycle schedules, bf16 autocast for
training (on CUDA, and on CPUs with native bf16), channels_last wherever bf16 trains, fp32
evaluation, masks that keep pruned weights exactly zero, and the fast-training options of
:mod:`unlearnbench.training.fast_training`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench.data.augment import normalize, random_crop, random_flip
from unlearnbench.data.images import ImageSplit
from unlearnbench.progress import NullProgress, ProgressSink
from unlearnbench.training.fast_training import Lookahead, epoch_flips, param_groups
from unlearnbench.training.masks import Mask
from unlearnbench.training.recipe import TrainRecipe, lr_factor
from unlearnbench.training.tally import TrainingTally, bf16_supported

log = logging.getLogger(__name__)

LossFn = Callable[..., torch.Tensor]
"""``loss_fn(model, *batch)``: a scalar loss of one batch (``batch`` is ``(x, y)`` for ``fit``)."""
StepHook = Callable[[nn.Module, torch.optim.Optimizer], None]
EpochLogFn = Callable[[int, str, float], None]
"""``epoch_log(epoch, name, value)``, e.g. a task's ``task.log`` (an :class:`~.unlearning.EpochLog`)."""
TRAIN_LOSS = "train_loss"
TRAIN_ACCURACY = "train_acc"


class Engine:
    """Trains and evaluates models on one device.

    Splits given to it should already live on ``device`` (the pipeline moves each dataset there
    once); ``mean``/``std`` normalise uint8 images inside every batch. ``bf16``: train under bf16
    autocast (None: wherever :func:`bf16_supported`). ``channels_last``: models and batches in
    channels-last memory format (None: on CUDA and wherever ``bf16``; oneDNN's bf16 and fp32
    convolutions are faster in it, see ``benchmarks/cifar10_airbench.py``). Evaluation
    (:meth:`logits`) always runs in fp32, so metrics do not depend on the training precision.
    """

    def __init__(
        self,
        device: torch.device | str,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        *,
        progress: ProgressSink | None = None,
        eval_batch_size: int = 1024,
        bf16: bool | None = None,
        channels_last: bool | None = None,
        deterministic: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.mean = torch.tensor(mean, device=self.device)
        self.std = torch.tensor(std, device=self.device)
        self.progress = progress or NullProgress()
        self.tally = TrainingTally()
        """Epochs trained and validation accuracy after each epoch, across every fit (the runner
        reads what one node added: its budget and its validation curve)."""
        self.eval_batch_size = eval_batch_size
        self.cuda = self.device.type == "cuda"
        self.bf16 = bf16_supported(self.device) if bf16 is None else bf16
        self.channels_last = (self.cuda or self.bf16) if channels_last is None else channels_last
        if self.cuda:  # fixed input shapes: let cuDNN pick its kernels (not in deterministic mode)
            torch.backends.cudnn.benchmark = not deterministic
            torch.backends.cudnn.deterministic = deterministic

    # --- model placement ---------------------------------------------------------------------
    def prepare(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def _autocast(self) -> torch.autocast:
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def generator(self, seed: int) -> torch.Generator:
        gen = torch.Generator(device=self.device)
        gen.manual_seed(seed)
        return gen

    # --- batches -----------------------------------------------------------------------------
    def batches(
        self,
        split: ImageSplit,
        batch_size: int,
        generator: torch.Generator | None,
        *,
        augment: bool = False,
        padding: int = 4,
        shuffle: bool = True,
        flips: torch.Tensor | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised float batches ``(x, y)`` of ``split`` on the device. ``flips``: with
        ``augment``, mirror exactly the images marked True (one bool per image of ``split``)
        instead of a random half."""
        split = split.to(self.device)
        n = len(split)
        if shuffle:
            order = torch.randperm(n, device=self.device, generator=generator)
        else:
            order = torch.arange(n, device=self.device)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            images = split.images[index]
            if augment:
                images = random_crop(images, padding, generator)
                if flips is None:
                    images = random_flip(images, generator)
                else:
                    images = torch.where(flips[index, None, None, None], images.flip(-1), images)
            x = normalize(images, self.mean, self.std, torch.float32)
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, split.labels[index]

    def steps_per_epoch(self, split: ImageSplit, batch_size: int) -> int:
        return max(1, math.ceil(len(split) / batch_size))

    # --- training ----------------------------------------------------------------------------
    def optimizer(self, model: nn.Module, recipe: TrainRecipe) -> torch.optim.Optimizer:
        if recipe.optimizer == "adam":
            return torch.optim.Adam(
                [p for p in model.parameters() if p.requires_grad],
                lr=recipe.lr,
                weight_decay=recipe.weight_decay,
                fused=self.cuda or None,
            )
        return torch.optim.SGD(
            param_groups(model, recipe),
            momentum=recipe.momentum,
            nesterov=recipe.nesterov and recipe.momentum > 0,
            fused=self.cuda or None,  # one fused kernel for the update on CUDA
        )

    def fit(
        self,
        model: nn.Module,
        split: ImageSplit,
        recipe: TrainRecipe,
        *,
        seed: int,
        mask: Mask | None = None,
        loss_fn: LossFn | None = None,
        description: str = "train",
        on_epoch_end: Callable[[int, nn.Module], None] | None = None,
        val: ImageSplit | None = None,
        start_epoch: int = 0,
        epoch_log: EpochLogFn | None = None,
    ) -> None:
        """Train ``model`` in place on ``split`` for ``recipe.epochs`` epochs.

        ``val``: the validation split ``recipe.keep_best`` selects on. ``start_epoch``: the LR
        schedule starts this many epochs in (the reference steps its scheduler ``rewind_epoch``
        times after rewinding); the run still trains ``recipe.epochs`` epochs. ``epoch_log``: receives
        each epoch's values as in :meth:`fit_batches`.
        """
        if len(split) == 0:
            raise ValueError(f"cannot {description} on an empty split")
        generator = self.generator(seed)
        flips = epoch_flips(recipe, len(split), generator, self.device)

        def epoch_batches(epoch: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
            return self.batches(
                split,
                recipe.batch_size,
                generator,
                augment=recipe.augment,
                padding=recipe.crop_padding,
                flips=flips(start_epoch + epoch),
            )

        self.fit_batches(
            model,
            recipe,
            epoch_batches,
            steps_per_epoch=self.steps_per_epoch(split, recipe.batch_size),
            mask=mask,
            loss_fn=loss_fn,
            description=description,
            on_epoch_end=on_epoch_end,
            val=val,
            start_epoch=start_epoch,
            epoch_log=epoch_log,
        )

    def fit_batches(
        self,
        model: nn.Module,
        recipe: TrainRecipe,
        epoch_batches: Callable[[int], Iterable[tuple[Any, ...]]],
        *,
        steps_per_epoch: int,
        mask: Mask | None = None,
        loss_fn: LossFn | None = None,
        description: str = "train",
        on_epoch_end: Callable[[int, nn.Module], None] | None = None,
        before_step: StepHook | None = None,
        after_step: StepHook | None = None,
        val: ImageSplit | None = None,
        start_epoch: int = 0,
        epoch_log: EpochLogFn | None = None,
    ) -> None:
        """The training loop over the batches ``epoch_batches(epoch)`` yields for each epoch;
        ``loss_fn(model, *batch)`` gives each batch's loss (cross-entropy on ``(x, y)`` by default).

        ``epoch_log(epoch, name, value)`` (1-based epochs) receives, after each epoch, ``train_loss``
        (the mean batch loss of the epoch) and, with the default loss, ``train_acc`` (the percent
        of the epoch's training examples the model classified right in its forward pass, before
        that step's update; augmented when the recipe augments). They are summed on the device
        and read once per epoch, so logging adds no synchronisation per step.

        ``before_step`` runs after the backward pass (gradients of pruned weights already zero),
        ``after_step`` after the update (pruned weights already zero). The rate follows the
        schedule by epoch position, so epochs with differing step counts are fine. ``val`` and
        ``start_epoch`` as in :meth:`fit`.
        """
        sums = torch.zeros(3, device=self.device)  # loss sum, correct, examples (this epoch)
        if loss_fn is None:
            smoothing = recipe.label_smoothing

            def loss_fn(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                out = m(x)
                if epoch_log is not None:
                    with torch.no_grad():
                        sums[1] += (out.argmax(dim=1) == y).sum()
                        sums[2] += y.numel()
                return F.cross_entropy(out, y, label_smoothing=smoothing)

        params = dict(model.named_parameters())
        masked = [] if mask is None else sorted(mask.tensors)
        masked_params = [params[n] for n in masked]
        drops = [~mask.tensors[n].to(self.device) for n in masked] if mask else []
        if mask is not None:
            mask.apply_(model)
        optimizer = self.optimizer(model, recipe)
        lookahead = Lookahead.for_recipe(model, recipe, recipe.epochs * steps_per_epoch)
        model.train()
        step = 0
        select = recipe.keep_best and val is not None and len(val) > 0
        if recipe.keep_best and not select:
            log.warning("%s: keep_best needs a validation split; keeping the last epoch", description)
        best: tuple[float, dict[str, torch.Tensor]] | None = None
        task = self.progress.start(description, recipe.epochs)
        for epoch in range(recipe.epochs):
            for i, batch in enumerate(epoch_batches(epoch)):
                position = (start_epoch + epoch) * steps_per_epoch + min(i, steps_per_epoch - 1)
                factor = lr_factor(recipe, position, steps_per_epoch)
                for group in optimizer.param_groups:
                    group["lr"] = group.get("base_lr", recipe.lr) * factor
                with self._autocast():
                    loss = loss_fn(model, *batch)
                if epoch_log is not None:
                    sums[0] += loss.detach().float()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                for param, drop in zip(masked_params, drops, strict=True):
                    if param.grad is not None:
                        param.grad.masked_fill_(drop, 0.0)
                if before_step is not None:
                    before_step(model, optimizer)
                optimizer.step()
                with torch.no_grad():  # masked_fill, not multiply: a pruned NaN must become 0
                    for param, drop in zip(masked_params, drops, strict=True):
                        param.masked_fill_(drop, 0.0)
                if after_step is not None:
                    after_step(model, optimizer)
                step += 1
                if lookahead is not None:
                    lookahead.after_step(model, step)
            last = float(loss.detach())
            if not math.isfinite(last):
                log.warning("%s: loss is %s after epoch %d", description, last, epoch + 1)
            if epoch_log is not None:
                loss_sum, correct, seen = sums.tolist()
                epoch_log(epoch + 1, TRAIN_LOSS, loss_sum / (i + 1))
                if seen:
                    epoch_log(epoch + 1, TRAIN_ACCURACY, 100.0 * correct / seen)
                sums.zero_()
            if lookahead is not None and epoch == recipe.epochs - 1:
                lookahead.finish(model)
            self.progress.advance(task)
            self.tally.epochs += 1
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, model)
            if val is not None and len(val) > 0:  # the validation curve (evaluation mode, no RNG)
                score = self.accuracy(model, val)
                model.train()
                self.tally.curve.append((description, epoch + 1, score))
            if select and (best is None or score > best[0]):
                best = (score, {k: v.detach().clone() for k, v in model.state_dict().items()})
        if best is not None:
            model.load_state_dict(best[1])
            log.info("%s: kept the best validation epoch (%.2f%%)", description, best[0])
        self.progress.finish(task)
        model.eval()

    # --- evaluation --------------------------------------------------------------------------
    @torch.no_grad()
    def logits(self, model: nn.Module, split: ImageSplit) -> torch.Tensor:
        """Float32 logits [N, K] on the CPU, in the split's order, computed in fp32 (no autocast,
        whatever the training precision)."""
        model.eval()
        outputs = []
        for x, _ in self.batches(split, self.eval_batch_size, None, shuffle=False):
            with torch.autocast(device_type=self.device.type, enabled=False):
                outputs.append(model(x).float())
        if not outputs:
            return torch.empty(0, 0)
        return torch.cat(outputs).cpu()

    def accuracy(self, model: nn.Module, split: ImageSplit) -> float:
        """Top-1 accuracy in percent (NaN for an empty split)."""
        if len(split) == 0:
            return float("nan")
        predicted = self.logits(model, split).argmax(dim=1)
        return 100.0 * float((predicted == split.labels.cpu()).float().mean())
