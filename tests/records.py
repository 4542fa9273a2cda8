"""A result record's identity fields for report tests (the fields a test does not vary)."""

from __future__ import annotations

from typing import Any


def base_record(unlearner: str, seed: int, **fields: Any) -> dict[str, Any]:
    """An ``ok`` record of protocol ``p`` on digits (class-0 forget set, OMP) with ``fields``."""
    return {
        "protocol": "p",
        "protocol_version": 1,
        "protocol_hash": "a" * 64,
        "dataset": "digits",
        "data_copy": "sklearn-digits",
        "model": "small-cnn",
        "forget_set": "class0",
        "forget_kind": "class",
        "forget_size": 10,
        "forget_sha256": "b" * 64,
        "pruner": "omp",
        "unlearner": unlearner,
        "unprune": False,
        "unpruner": None,
        "seed": seed,
        "status": "ok",
        "git": "c" * 40,
        **fields,
    }
