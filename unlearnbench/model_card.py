"""Model cards of exported models (``unlearnbench export``): Hugging Face style markdown with YAML
front matter, naming the protocol, its hash, the data copy, seed, commit, node key, weights'
sha256 and the metrics of the rows that scored the model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

WEIGHTS = "model.pt"


ROLE_TEXT = {
    "original": "the original model of the protocol, pruned (the `original` row: before unlearning)",
    "original-dense": "the dense original model, trained on the whole training pool",
    "retrain": "the retrain reference: retrained from scratch on the retain set (under the original's mask)",
    "gold": "the gold reference of un-pruning: the original's procedure run on the retain set",
}


def model_card(info: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    """A Hugging Face style model card (YAML front matter, then markdown) for an exported model."""
    metric_names = list(record.get("metric_names") or [])
    labels = {n: (record.get("metric_info") or {}).get(n, {}).get("label", n) for n in metric_names}
    lines = [
        "---",
        "library_name: unlearnbench",
        "tags:",
        "- machine-unlearning",
        "- unlearnbench",
        f"- {info['protocol']}",
        "---",
        "",
        f"# {info['protocol']} · {info['role']} · seed {info['seed']}",
        "",
        f"This is {ROLE_TEXT.get(info['role'], info['role'])}, exported by `unlearnbench export`.",
        "",
        "| field | value |",
        "| --- | --- |",
        f"| protocol | {info['protocol']} v{info['protocol_version']} |",
        f"| protocol hash | `{info['protocol_hash']}` |",
        f"| dataset (data copy) | {info['dataset']} (`{info['data_copy']}`) |",
        f"| model | {info['model']} |",
        f"| seed | {info['seed']} |",
    ]
    if info["forget_set"]:
        lines.append(f"| forget set | {info['forget_set']} (sha256 `{str(info['forget_sha256'])[:12]}`) |")
    if info["pruner"]:
        lines.append(f"| pruner @ sparsity | {info['pruner']} @ {info['sparsity_target']} |")
    lines += [
        f"| commit | `{info['commit'] or 'unknown'}` |",
        f"| node key | `{info['node_key']}` |",
        f"| weights sha256 | `{info['files'][WEIGHTS]}` |",
    ]
    if info.get("provenance"):
        p = info["provenance"]
        lines.append(f"| computed on | {p.get('device')}, {p.get('precision')} |")
    lines += ["", "## Metrics", ""]
    if info["rows"] and metric_names:
        lines.append(
            "| forget set | pruner @ sparsity | " + " | ".join(labels[n] for n in metric_names) + " |"
        )
        lines.append("| --- | --- | " + " | ".join("---" for _ in metric_names) + " |")
        for row in info["rows"]:
            cells = [_cell(row["metrics"].get(n)) for n in metric_names]
            lines.append(
                f"| {row['forget_set']} | {row['pruner']} @ {row['sparsity_target']} | {' | '.join(cells)} |"
            )
    else:
        lines.append("Not evaluated as a row of this run (the rows scored the pruned model built on it).")
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "import torch",
        f'state = torch.load("{WEIGHTS}", map_location="cpu", weights_only=True)  # a state_dict',
        "```",
        "",
    ]
    if info["role"] == "original-dense":
        lines += [
            "As the original of a run (recomputes nothing it already has; keyed by the weights' sha256):",
            "",
            "```bash",
            f"unlearnbench run {info['protocol']} --original PATH/TO/THIS/FOLDER",
            "```",
            "",
        ]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def index_page(written: Sequence[tuple[str, str, str, str]]) -> str:
    """The export folder's ``README.md``: one line per (folder, role, stage, weights sha256)."""
    lines = [
        "# Exported models",
        "",
        "| folder | role | stage | weights sha256 |",
        "| --- | --- | --- | --- |",
    ]
    for name, role, stage, sha256 in written:
        lines.append(f"| [{name}]({name}/README.md) | {role} | {stage} | `{sha256[:12]}` |")
    return "\n".join(lines) + "\n"
