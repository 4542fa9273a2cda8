"""The one place the distance and representation metrics take their randomness from.

The seed is the metric's own ``seed`` parameter (default 0) plus the evaluation repetition's
seed (``ctx.eval_seed``, 0 .. K-1 with ``--eval-repeats K``), as MIA-Efficacy adds it to its
``shadow_seed``: every row of a run shares each draw, so rows stay comparable, and each
evaluation repetition is another draw. Metrics that call it declare ``seeded = True``.
"""

from __future__ import annotations

import hashlib

from unlearnbench.api import EvalContext

SEED_BITS = 63
"""Derived seeds are below 2**63 (what ``torch.manual_seed`` and numpy accept)."""


def evaluation_seed(ctx: EvalContext, configured: int) -> int:
    """The seed a metric's random draws use: ``configured`` (the metric's ``seed`` parameter)
    plus the evaluation seed."""
    return configured + ctx.eval_seed


def derived_seed(seed: int, purpose: str) -> int:
    """A seed for one ``purpose`` (e.g. ``"zrf-incompetent"``) from ``seed``: the first 63 bits of
    a BLAKE2b digest of both, so two purposes, or a purpose and a training seed, never share a
    stream by accident (a ZRF teacher built with the row's own seed would be the original's
    initialisation)."""
    digest = hashlib.blake2b(f"{purpose}:{seed}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << SEED_BITS) - 1)
