"""Stage ``external``: an externally produced model (a state_dict file) as a node of the graph.

The node is a leaf keyed by the file's sha256 and the architecture (see
:mod:`unlearnbench.run.external`); the file is read again here and refused if its bytes changed
since planning. On a sparse row the mask is the model's zero pattern over the names the row's
pruned original masks (parent ``topology``), or over the prune scope for a user architecture (none
when the architecture has nothing in the scope).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from torch import nn

from unlearnbench.errors import InvalidValueError
from unlearnbench.run.context import RunContext
from unlearnbench.run.external import load_into, read_checked
from unlearnbench.run.plan import Node
from unlearnbench.run.stages.common import ModelArtifact, Output, checked, model_of, state_of
from unlearnbench.training.masks import Mask
from unlearnbench.training.pruning import scope_parameter_names

log = logging.getLogger(__name__)


def zero_mask(model: nn.Module, names: frozenset[str] | set[str], scope: frozenset[str]) -> Mask:
    """The keep-mask of ``model``'s nonzero entries of the named parameters."""
    params = dict(model.named_parameters())
    return Mask({n: (params[n].detach() != 0).cpu() for n in sorted(names)}, frozenset(scope))


def external(ctx: RunContext, node: Node, parents: Mapping[str, Output]) -> ModelArtifact:
    assert node.seed is not None
    sha256, factory = node.inputs["sha256"], node.inputs["architecture"].get("factory")
    found = next((e for e in ctx.settings.externals if e.sha256 == sha256 and e.factory == factory), None)
    if found is None:
        raise InvalidValueError(f"no external model file with sha256 {sha256[:12]} was given to this run")
    where = f"model file {found.file}"
    state = read_checked(found.file, sha256, where)
    model = ctx.model_skeleton(node.seed, factory)
    architecture = f"model {ctx.protocol.model.name}" if factory is None else f"factory {factory}"
    load_into(model, state, where, architecture)
    mask = None
    if "topology" in parents:
        original = model_of(parents, "topology").mask
        assert original is not None
        mask = zero_mask(model, set(original.tensors), original.scope)
    elif node.inputs["masked"]:
        try:
            scope = scope_parameter_names(model, node.inputs["scope"])
        except InvalidValueError:  # nothing of the architecture is in the prune scope: no topology
            log.info("%s has no parameters in prune scope %r: no mask", found.label, node.inputs["scope"])
        else:
            mask = zero_mask(model, scope, scope)
    return ModelArtifact("", checked(state_of(model), node, found.label), mask, 0.0)


STAGES = {"external": external}
