"""Checkpoints in and out: a pretrained original from a file, a folder or the Hugging Face Hub
(``run --original``), and a run's originals and references exported with model cards
(``unlearnbench export``).

An exported model is a folder ``<protocol>-<role>-...-seed<N>/`` holding ``model.pt`` (the
state_dict, ``torch.save``), ``mask.pt`` for a pruned model, ``rewind.pt`` for a dense original
(its weights at the recipe's rewind epoch, which rewinding pruners read), ``unlearnbench.json``
(what made it: protocol, hash, data copy, seed, commit, node key, sha256 of each file, the
metrics of its rows) and ``README.md`` (a model card saying the same in words). Such a folder is
what ``run --original`` reads back; on the Hub (``pip install unlearnbench[hub]``) it is the
content of a model repo (``hf:OWNER/REPO``, with ``@REVISION`` and ``/SUBFOLDER``), downloaded
through ``huggingface_hub.snapshot_download``, which honours ``HF_HUB_OFFLINE=1`` (cache only).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearnbench.errors import InvalidValueError
from unlearnbench.model_card import index_page, model_card
from unlearnbench.run.artifacts import file_sha256, write_text_atomic
from unlearnbench.run.external import PretrainedOriginal

log = logging.getLogger(__name__)

HUB_PREFIX = "hf:"
WEIGHTS = "model.pt"
REWIND = "rewind.pt"
MASK = "mask.pt"
METADATA = "unlearnbench.json"
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin")
EXPORTED_ROLES = ("original", "retrain", "gold")
"""The rows whose models ``export`` writes (with the dense original behind a pruned one)."""


# --------------------------------------------------------------------------------------------
# In: a pretrained original
# --------------------------------------------------------------------------------------------
def hub_folder(spec: str) -> Path:
    """The local folder of ``OWNER/REPO[@REVISION][/SUBFOLDER]`` on the Hub (downloaded, or read
    from the cache when ``HF_HUB_OFFLINE=1``)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise InvalidValueError(
            f"--original {HUB_PREFIX}{spec} needs huggingface_hub: pip install 'unlearnbench[hub]'"
        ) from None
    parts = spec.split("/")
    if len(parts) < 2 or not all(parts[:2]):
        raise InvalidValueError(
            f"--original {HUB_PREFIX}{spec}: expected {HUB_PREFIX}OWNER/REPO[@REV][/SUBFOLDER]"
        )
    repo, _, revision = "/".join(parts[:2]).partition("@")
    subfolder = "/".join(parts[2:])
    try:
        root = snapshot_download(
            repo,
            revision=revision or None,
            allow_patterns=[f"{subfolder}/*"] if subfolder else None,
        )
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidValueError(f"--original {HUB_PREFIX}{spec}: {type(exc).__name__}: {first}") from None
    return Path(root) / subfolder


def resolve_original(source: str | Path) -> PretrainedOriginal:
    """The pretrained original named by ``source``: a state_dict file, a folder (an exported
    model's ``model.pt`` with its ``rewind.pt`` if any, or its only weights file) or
    ``hf:OWNER/REPO[@REV][/SUBFOLDER]``."""
    text = str(source)
    path = hub_folder(text[len(HUB_PREFIX) :]) if text.startswith(HUB_PREFIX) else Path(text).expanduser()
    if not path.exists():
        raise InvalidValueError(f"--original {text}: {path} does not exist")
    rewind = None
    if path.is_dir():
        if (path / WEIGHTS).is_file():
            rewind = path / REWIND if (path / REWIND).is_file() else None
            path = path / WEIGHTS
        else:
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
            if len(found) != 1:
                names = ", ".join(p.name for p in found) or "none"
                raise InvalidValueError(
                    f"--original {text}: folder {path} has no {WEIGHTS} and {len(found)} weight files "
                    f"({names}); name the file"
                )
            path = found[0]
    path = path.resolve()
    return PretrainedOriginal(
        source=text,
        file=str(path),
        sha256=file_sha256(path),
        rewind_file=None if rewind is None else str(rewind.resolve()),
        rewind_sha256=None if rewind is None else file_sha256(rewind),
    )


# --------------------------------------------------------------------------------------------
# Out: a run's originals and references with model cards
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportedModel:
    """One exported model folder: its role, node key and where it went."""

    folder: Path
    role: str
    stage: str
    key: str
    sha256: str


def _artifact_dir(root: Path, key: str) -> tuple[str, Path] | None:
    """The (stage, folder) of the artifact whose key is ``key`` (or starts with it)."""
    for stage_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        candidate = stage_dir / key[:24]
        if (candidate / "meta.json").is_file():
            return stage_dir.name, candidate
    return None


def _slug(*parts: Any) -> str:
    text = "-".join(str(p) for p in parts if p not in (None, ""))
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


def export_run(
    records: Iterable[Mapping[str, Any]], artifacts: Path, to: Path, *, roles: Iterable[str] = EXPORTED_ROLES
) -> list[ExportedModel]:
    """Write the models of the ok rows whose ``reference`` is one of ``roles`` (and the dense
    original behind each pruned original) to folders under ``to``, each with weights,
    ``unlearnbench.json`` and a model card, plus an index ``README.md``; returns what it wrote."""
    roles = tuple(roles)
    root = Path(artifacts)
    if not root.is_dir():
        raise InvalidValueError(f"artifact store {root} is not a folder (export reads a local store)")
    chosen: dict[str, dict[str, Any]] = {}  # model key -> what it is and the rows that scored it
    for record in records:
        if record.get("status") != "ok" or record.get("reference") not in roles:
            continue
        found = _row_model(root, record)
        if found is None:
            log.warning(
                "row %s: its model artifact is not in %s; skipped", record.get("row_id", "?")[:12], root
            )
            continue
        stage, key, dense = found
        role = record["reference"]
        entry = chosen.setdefault(key, {"role": role, "stage": stage, "record": record, "rows": []})
        entry["rows"].append(record)
        if dense is not None and dense != key:
            chosen.setdefault(
                dense, {"role": "original-dense", "stage": "original", "record": record, "rows": []}
            )
    if not chosen:
        raise InvalidValueError(
            f"no exportable rows ({', '.join(roles)}) with artifacts in {root}; run the protocol first"
        )
    to.mkdir(parents=True, exist_ok=True)
    written = []
    for key, entry in chosen.items():
        written.append(_export_one(root, key, entry, to))
    write_text_atomic(
        to / "README.md", index_page([(i.folder.name, i.role, i.stage, i.sha256) for i in written])
    )
    return written


def _row_model(root: Path, record: Mapping[str, Any]) -> tuple[str, str, str | None] | None:
    """(stage, key) of the model a row evaluated, from its evaluate artifact, and the key of the
    dense original behind it."""
    for prefix in record.get("node_keys") or ():
        meta = root / "evaluate" / prefix[:24] / "meta.json"
        if meta.is_file():
            inputs = json.loads(meta.read_text()).get("inputs", {})
            key = inputs.get("model")
            where = None if key is None else _artifact_dir(root, key)
            if where is None:
                return None
            stage, folder = where
            parent = json.loads((folder / "meta.json").read_text()).get("inputs", {}).get("parent")
            dense = parent if stage == "prune" else (key if stage == "original" else None)
            return stage, key, dense
    return None


def _export_one(root: Path, key: str, entry: Mapping[str, Any], to: Path) -> ExportedModel:
    where = _artifact_dir(root, key)
    assert where is not None, key
    stage, folder = where
    record, role = entry["record"], entry["role"]
    sparse = role != "original-dense" and record.get("sparsity_target", 0.0) > 0.0
    forget = record["forget_set"] if role in ("retrain", "gold") else None
    name = _slug(
        record["protocol"],
        role,
        forget,
        *((record["pruner"], record["sparsity_target"]) if sparse else ()),
        f"seed{record['seed']}",
    )
    out = to / name
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for source, target in ((WEIGHTS, WEIGHTS), (MASK, MASK), (REWIND, REWIND)):
        if (folder / source).is_file() and (source != REWIND or stage == "original"):
            shutil.copyfile(folder / source, out / target)
            (out / target).chmod(0o644)
            files[target] = file_sha256(out / target)
    meta = json.loads((folder / "meta.json").read_text())
    info = {
        "role": role,
        "stage": stage,
        "node_key": key,
        "protocol": record["protocol"],
        "protocol_version": record["protocol_version"],
        "protocol_hash": record["protocol_hash"],
        "dataset": record.get("dataset"),
        "data_copy": record.get("data_copy"),
        "model": record.get("model"),
        "seed": record["seed"],
        "forget_set": forget,
        "forget_sha256": record.get("forget_sha256") if forget else None,
        "pruner": record["pruner"] if sparse else None,
        "sparsity_target": record["sparsity_target"] if sparse else 0.0,
        "commit": record.get("git"),
        "versions": {k: v for k, v in (record.get("versions") or {}).items() if isinstance(v, str)},
        "provenance": meta.get("provenance"),
        "files": files,
        "rows": [
            {
                "forget_set": r["forget_set"],
                "pruner": r["pruner"],
                "sparsity_target": r["sparsity_target"],
                "metrics": r.get("metrics", {}),
                "row_id": r.get("row_id"),
            }
            for r in entry["rows"]
        ],
    }
    write_text_atomic(out / METADATA, json.dumps(info, indent=2, sort_keys=True) + "\n")
    write_text_atomic(out / "README.md", model_card(info, record))
    for path in (out / METADATA, out / "README.md"):
        path.chmod(0o644)
    return ExportedModel(out, role, stage, key, files[WEIGHTS])


def push_plan(folder: Path, repo_id: str) -> list[str]:
    """The files ``push_to_hub`` would upload from ``folder`` to ``repo_id`` (no network)."""
    if "/" not in repo_id:
        raise InvalidValueError(f"--push-to {repo_id!r}: expected OWNER/REPO")
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def push_to_hub(folder: Path, repo_id: str, *, private: bool = True) -> str:
    """Upload an export folder to a Hub model repo (created if missing); returns the repo URL."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise InvalidValueError("--push-to needs huggingface_hub: pip install 'unlearnbench[hub]'") from None
    push_plan(folder, repo_id)
    api = HfApi()
    url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model")
    return str(url)
