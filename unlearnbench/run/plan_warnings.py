"""What the planner says about a selection that drops rows a protocol asks for (torch-free)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from unlearnbench.config.protocol import Protocol

log = logging.getLogger("unlearnbench.run.plan")


def warn_dense_only(p: Protocol, reference_rows: list[str]) -> None:
    """Say which rows a run whose every sparsity is 0 leaves out (they need a pruned model)."""
    dropped = [f"un-prune ({', '.join(p.unprune.unpruners)})"] if True in p.unprune.modes else []
    dropped += [f"reference {name}" for name in reference_rows]
    if dropped:
        log.warning(
            "every sparsity is 0 (dense models): the %s rows the protocol asks for need a pruned "
            "model and are left out; add a sparsity > 0 (e.g. --sparsity 0,0.9) to keep them",
            " and ".join(dropped),
        )
