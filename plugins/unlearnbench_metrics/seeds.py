"""The one place the distance and representation metrics take their randomness from.

Today the evaluation seed is the metric's own ``seed`` parameter (default 0), as MIA-Efficacy
takes ``shadow_seed`` and eps-score ``split_seed``: every row of a run shares it, so the
random draws repeat and rows stay comparable. When ``EvalContext`` carries an evaluation seed,
:func:`evaluation_seed` is the only function to change.
"""

from __future__ import annotations

import hashlib

from unlearnbench.api import EvalContext

SEED_BITS = 63
"""Derived seeds are below 2**63 (what ``torch.manual_seed`` and numpy accept)."""


def evaluation_seed(ctx: EvalContext, configured: int) -> int:
    """The seed a metric's random draws use: ``configured`` (the metric's ``seed`` parameter)."""
    del ctx  # the evaluation seed will come from here
    return configured


def derived_seed(seed: int, purpose: str) -> int:
    """A seed for one ``purpose`` (e.g. ``"zrf-incompetent"``) from ``seed``: the first 63 bits of
    a BLAKE2b digest of both, so two purposes, or a purpose and a training seed, never share a
    stream by accident (a ZRF teacher built with the row's own seed would be the original's
    initialisation)."""
    digest = hashlib.blake2b(f"{purpose}:{seed}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << SEED_BITS) - 1)
