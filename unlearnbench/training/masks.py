"""The pruning mask: one boolean tensor per masked parameter, and the distances between masks.

A mask keeps a weight where its entry is True. ``scope`` names the parameters the pruner ranked
(measured sparsity is computed over them); ``tensors`` may also hold parameters masked as a
consequence (for structured pruning: the BatchNorm channel and the next layer's input channel).
The IoU of kept sets is the overlap measure of the un-pruning work (Xiao et al., 2025,
arXiv 2507.18725, ``compute_overlap``); IoM is the fraction of a reference mask recovered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from unlearnbench.errors import InvalidValueError


@dataclass(frozen=True)
class Mask:
    """Boolean keep-masks by parameter name; ``scope`` is the set the pruner ranked."""

    tensors: Mapping[str, torch.Tensor]
    scope: frozenset[str]

    def __post_init__(self) -> None:
        missing = self.scope - set(self.tensors)
        if missing:
            raise ValueError(f"mask scope names parameters without a mask: {sorted(missing)}")
        for name, tensor in self.tensors.items():
            if tensor.dtype != torch.bool:
                raise ValueError(f"mask for {name} must be bool, got {tensor.dtype}")

    @classmethod
    def dense(cls, model: nn.Module, names: list[str]) -> Mask:
        """A mask that keeps every entry of the named parameters."""
        params = dict(model.named_parameters())
        tensors = {name: torch.ones_like(params[name], dtype=torch.bool) for name in names}
        return cls(tensors=tensors, scope=frozenset(names))

    # --- measurement -------------------------------------------------------------------
    def kept(self, names: frozenset[str] | None = None) -> int:
        names = self.scope if names is None else names
        return int(sum(int(self.tensors[n].sum()) for n in names))

    def total(self, names: frozenset[str] | None = None) -> int:
        names = self.scope if names is None else names
        return int(sum(self.tensors[n].numel() for n in names))

    def sparsity(self) -> float:
        """Fraction of pruned entries over the scope (the figure results report)."""
        total = self.total()
        return 0.0 if total == 0 else 1.0 - self.kept() / total

    def layer_sparsity(self) -> dict[str, float]:
        """Fraction of pruned entries of every masked parameter."""
        return {
            name: 1.0 - float(t.sum()) / t.numel() if t.numel() else 0.0
            for name, t in sorted(self.tensors.items())
        }

    # --- model interaction ---------------------------------------------------------------
    def to(self, device: torch.device | str) -> Mask:
        return Mask({n: t.to(device) for n, t in self.tensors.items()}, self.scope)

    def apply_(self, model: nn.Module) -> None:
        """Zero every masked-out weight of ``model`` in place."""
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, keep in self.tensors.items():
                param = params[name]
                param.masked_fill_(~keep.to(param.device), 0.0)

    def violations(self, model: nn.Module) -> dict[str, int]:
        """Number of masked-out entries that are not exactly zero, by parameter."""
        params = dict(model.named_parameters())
        found = {}
        for name, keep in self.tensors.items():
            param = params[name].detach()
            bad = int(((param != 0) & ~keep.to(param.device)).sum())
            if bad:
                found[name] = bad
        return found

    @classmethod
    def from_model(cls, model: nn.Module, scope: frozenset[str]) -> Mask:
        """The mask of nonzero entries of the scoped parameters of ``model``."""
        params = dict(model.named_parameters())
        return cls({n: params[n].detach().ne(0).cpu() for n in sorted(scope)}, scope)

    # --- distances -------------------------------------------------------------------------
    def _common(self, other: Mask) -> list[str]:
        if self.scope != other.scope:
            raise InvalidValueError(
                "masks cover different parameters: "
                f"{sorted(self.scope ^ other.scope)} are in only one of them"
            )
        return sorted(self.scope)

    def intersection(self, other: Mask) -> int:
        return int(sum(int((self.tensors[n] & other.tensors[n]).sum()) for n in self._common(other)))

    def union(self, other: Mask) -> int:
        return int(sum(int((self.tensors[n] | other.tensors[n]).sum()) for n in self._common(other)))

    def iou(self, other: Mask) -> float:
        """|kept_a & kept_b| / |kept_a | kept_b| over the scope (1.0 for two empty masks)."""
        union = self.union(other)
        return 1.0 if union == 0 else self.intersection(other) / union

    def iom(self, reference: Mask) -> float:
        """|kept & kept_ref| / |kept_ref|: the fraction of ``reference``'s kept set recovered."""
        kept_ref = reference.kept()
        return 1.0 if kept_ref == 0 else self.intersection(reference) / kept_ref

    def hamming(self, other: Mask) -> int:
        """Number of scoped entries kept by exactly one of the two masks."""
        return int(sum(int((self.tensors[n] ^ other.tensors[n]).sum()) for n in self._common(other)))

    def layer_iou(self, other: Mask) -> dict[str, float]:
        out = {}
        for name in self._common(other):
            a, b = self.tensors[name], other.tensors[name]
            union = int((a | b).sum())
            out[name] = 1.0 if union == 0 else int((a & b).sum()) / union
        return out

    def layer_iom(self, reference: Mask) -> dict[str, float]:
        """:meth:`iom` of every scoped parameter (1.0 where ``reference`` keeps none of it)."""
        out = {}
        for name in self._common(reference):
            a, b = self.tensors[name], reference.tensors[name]
            kept_ref = int(b.sum())
            out[name] = 1.0 if kept_ref == 0 else int((a & b).sum()) / kept_ref
        return out

    def layer_hamming(self, other: Mask) -> dict[str, int]:
        """:meth:`hamming` of every scoped parameter."""
        return {n: int((self.tensors[n] ^ other.tensors[n]).sum()) for n in self._common(other)}

    # --- filter-level views (structured pruning) ---------------------------------------------
    def filter_kept(self, name: str) -> torch.Tensor:
        """Bool [out]: whether each output filter (slice along dim 0) of ``name`` keeps any entry."""
        tensor = self.tensors[name]
        return tensor.reshape(tensor.shape[0], -1).any(dim=1) if tensor.dim() else tensor.reshape(1)

    def channel_sparsity(self) -> dict[str, float]:
        """Fraction of output filters with every entry pruned, for each scoped parameter."""
        out = {}
        for name in sorted(self.scope):
            kept = self.filter_kept(name)
            out[name] = 1.0 - float(kept.sum()) / kept.numel() if kept.numel() else 0.0
        return out

    def filter_sparsity(self) -> float:
        """Fraction of all scoped output filters with every entry pruned."""
        kept = [self.filter_kept(name) for name in sorted(self.scope)]
        total = sum(k.numel() for k in kept)
        return 0.0 if total == 0 else 1.0 - sum(int(k.sum()) for k in kept) / total

    def _filter_counts(self, other: Mask) -> dict[str, tuple[int, int, int]]:
        """Per scoped layer: (|kept_a & kept_b|, |kept_a | kept_b|, |kept_b|) over filter indices."""
        counts = {}
        for name in self._common(other):
            a, b = self.filter_kept(name), other.filter_kept(name)
            counts[name] = (int((a & b).sum()), int((a | b).sum()), int(b.sum()))
        return counts

    def layer_filter_iou(self, other: Mask) -> dict[str, float]:
        """IoU of the kept filter indices of every scoped layer (1.0 where both keep none)."""
        return {
            name: 1.0 if union == 0 else inter / union
            for name, (inter, union, _) in self._filter_counts(other).items()
        }

    def filter_iou(self, other: Mask) -> float:
        """Kept-filter IoU pooled over the scope: sum of intersections / sum of unions."""
        counts = self._filter_counts(other).values()
        union = sum(c[1] for c in counts)
        return 1.0 if union == 0 else sum(c[0] for c in counts) / union

    def filter_iom(self, reference: Mask) -> float:
        """Fraction of ``reference``'s kept filters (pooled over the scope) that this mask keeps."""
        counts = self._filter_counts(reference).values()
        kept_ref = sum(c[2] for c in counts)
        return 1.0 if kept_ref == 0 else sum(c[0] for c in counts) / kept_ref

    # --- persistence -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, object]:
        return {"tensors": {n: t.cpu() for n, t in self.tensors.items()}, "scope": sorted(self.scope)}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, object]) -> Mask:
        tensors = dict(state["tensors"])  # type: ignore[arg-type]
        return cls(tensors=tensors, scope=frozenset(state["scope"]))  # type: ignore[arg-type]

    def save(self, path: Path) -> None:
        torch.save(self.state_dict(), path)

    @classmethod
    def load(cls, path: Path) -> Mask:
        return cls.from_state_dict(torch.load(path, map_location="cpu", weights_only=True))
