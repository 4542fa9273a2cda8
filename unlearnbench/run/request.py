"""What a run request (the CLI's ``run``/``plan`` options, or the Python API's arguments)
resolves to: the protocol after its overrides and selections, and the run settings. No click here:
``cli_options`` declares the options, this module reads their values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from unlearnbench.config.protocol import Protocol, load_protocol, parse_override_value
from unlearnbench.config.protocol_files import locate_protocol
from unlearnbench.errors import InvalidValueError, UnknownChoiceError
from unlearnbench.registry.catalog import Registry
from unlearnbench.run.outdir import check_artifact_store, check_output_dir
from unlearnbench.run.settings import RunSettings
from unlearnbench.training.pruning import check_sparsity

DEFAULT_PROTOCOL = "digits-quickstart"


def parse_sets(pairs: Sequence[str]) -> list[tuple[str, Any]]:
    out = []
    for pair in pairs:
        if "=" not in pair:
            raise InvalidValueError(f"--set {pair!r} is not KEY=VALUE (e.g. --set train.epochs=5)")
        key, value = pair.split("=", 1)
        out.append((key.strip(), parse_override_value(value.strip())))
    return out


def parse_sparsities(values: Sequence[str]) -> list[float]:
    found = []
    for value in values:
        for part in value.split(","):
            try:
                number = float(part)
            except ValueError:
                raise InvalidValueError(f"sparsity {part!r} is not a number in [0, 1)") from None
            found.append(check_sparsity(number))
    return found


def parse_timeouts(values: Sequence[str]) -> dict[str, float]:
    """``--timeout`` values: ``STAGE=SECONDS`` for one stage, ``SECONDS`` for every stage."""
    from unlearnbench.run.stages import STAGES

    found: dict[str, float] = {}
    for value in split_names(values):
        stage, sep, number = value.rpartition("=")
        stages = [stage.strip()] if sep else list(STAGES)
        if sep and stage.strip() not in STAGES:
            raise UnknownChoiceError("--timeout stage", stage.strip(), STAGES)
        try:
            seconds = float(number)
        except ValueError:
            seconds = -1.0
        if not seconds > 0 or seconds == float("inf"):
            raise InvalidValueError(f"--timeout {value!r}: SECONDS must be a number > 0 (e.g. evaluate=600)")
        found.update(dict.fromkeys(stages, seconds))
    return found


def split_names(values: Sequence[str]) -> list[str]:
    """Names from repeated and comma-separated option values, in order (a name given twice stays
    twice, so the protocol refuses the repeated row)."""
    return [p.strip() for v in values for p in v.split(",") if p.strip()]


def parse_seeds(values: Sequence[str]) -> list[str]:
    """Seeds (``+N`` adds to the protocol's); each must be an integer (the protocol checks >= 0)."""
    names = split_names(values)
    for name in names:
        try:
            int(name.removeprefix("+"))
        except ValueError:
            raise InvalidValueError(f"--seed {name!r} is not an integer >= 0") from None
    return names


def with_defaults(names: list[str], defaults: Sequence[Any], cast: Any = str) -> list[Any]:
    """``names`` as a list option's value: ``+name`` entries add to ``defaults`` (the protocol's
    list; one already there is not added again); plain names replace it."""
    plain = [cast(n) for n in names if not n.startswith("+")]
    base = plain if plain else list(defaults)
    return base + [a for a in dict.fromkeys(cast(n[1:]) for n in names if n.startswith("+")) if a not in base]


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidValueError(f"--device {device!r}: no CUDA device is available; valid choices: auto, cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise InvalidValueError(f"--device {device!r} is not one of: auto, cpu, cuda, cuda:N")
    return device


def load_run(
    registry: Registry, options: dict[str, Any], *, writes: bool = True
) -> tuple[Protocol, RunSettings]:
    """The protocol after the run options, and the run settings (``writes``: check ``--out``)."""
    from unlearnbench.run.tune import read_override_file

    file = options["override_file"]
    overrides, tuning = read_override_file(file) if file else ([], {})
    overrides += parse_sets(options["sets"])
    path = locate_protocol(registry, options["protocol"])
    lists = {
        "prune.pruners": split_names(options["pruners"]),
        "unlearn.unlearners": split_names(options["unlearners"]),
        "unprune.unpruners": split_names(options.get("unpruners", ())),
        "evaluate.metrics": split_names(options["metrics"]),
        "seeds": parse_seeds(options["seeds"]),
    }
    base = load_protocol(path, overrides, registry) if any(lists.values()) else None
    if sparsities := parse_sparsities(options["sparsities"]):
        overrides.append(("prune.sparsities", sparsities))
    for key, names in lists.items():
        if names and base is not None:
            section, _, field = key.rpartition(".")
            defaults = getattr(getattr(base, section) if section else base, field)
            overrides.append((key, with_defaults(names, defaults, int if key == "seeds" else str)))
    if options["unprune"] is not None:
        overrides.append(("unprune.modes", [options["unprune"]]))
    if options["limit"]:
        overrides.append(("data.limit", options["limit"]))
    for key, option in (("unlearn.repeats", "unlearn_repeats"), ("evaluate.repeats", "eval_repeats")):
        if options.get(option) is not None:
            if options[option] < 1:
                raise InvalidValueError(
                    f"--{option.replace('_', '-')} {options[option]} must be an integer >= 1"
                )
            overrides.append((key, options[option]))
    loaded = load_protocol(path, overrides, registry)
    data_root = options["data_root"]
    if data_root is not None and not getattr(
        registry.get("dataset", loaded.data.dataset), "reads_root", True
    ):
        raise InvalidValueError(
            f"--data-root {data_root}: dataset {loaded.data.dataset} ships with its package and reads no "
            "data root; drop --data-root"
        )
    if writes:
        check_output_dir(options["out"])
    if options["threads"] is not None and options["threads"] < 1:
        raise InvalidValueError(f"--threads {options['threads']} must be an integer >= 1")
    import torch

    from unlearnbench.run.threads import threads_for

    deterministic = bool(options.get("deterministic"))
    if deterministic and options["threads"] is None:
        threads = 1
    else:
        threads = threads_for(options["threads"], torch.get_num_threads())
    torch.set_num_threads(threads)
    settings = RunSettings(
        out=options["out"],
        device=resolve_device(options["device"]),
        data_root=options["data_root"],
        download=options["download"],
        artifact_root=options["artifact_root"],
        tuning=tuning,
        precision=options.get("precision") or "auto",
        threads=threads,
        deterministic=deterministic,
        timeouts=parse_timeouts(options.get("timeouts", ())),
    )
    if options.get("original"):
        from dataclasses import replace

        from unlearnbench.run.checkpoints import resolve_original

        settings = replace(settings, original=resolve_original(options["original"]))
    check_artifact_store(settings.artifacts, writes=writes)
    if options.get("executor") == "ray":
        from unlearnbench.run.ray_executor import check_ray_address

        check_ray_address(options.get("ray_address"))
    return loaded, settings
