"""The three seeds of a row: ``train`` (the original, its pruning and the references built from
it), ``unlearn`` (everything random inside the unlearner and un-pruner) and ``eval`` (shadow draws
and any other randomness of metrics).

Unlearning repetition 0 of train seed s uses unlearning seed s and evaluation repetition k uses
evaluation seed k, so a run with one repetition of each is the run ``--seed s`` always was (same
keys, same records). Later unlearning repetitions derive their seed from (s, j) by hashing, so
no two (train seed, repetition) pairs share a stream by construction of small offsets.
"""

from __future__ import annotations

import hashlib

SEED_LIMIT = 2**31 - 1


def unlearn_seed(train: int, repetition: int) -> int:
    """The unlearning seed of repetition ``repetition`` (0-based) on train seed ``train``."""
    if repetition == 0:
        return train
    digest = hashlib.sha256(f"unlearn/{train}/{repetition}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % SEED_LIMIT


def eval_seeds(repeats: int) -> tuple[int, ...]:
    """The evaluation seeds of ``repeats`` evaluation repetitions: 0 .. repeats - 1."""
    return tuple(range(repeats))
