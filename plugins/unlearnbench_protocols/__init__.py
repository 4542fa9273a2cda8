"""Built-in protocols, shipped as TOML files inside this package."""

from pathlib import Path

from unlearnbench.api import hookimpl

HERE = Path(__file__).parent


@hookimpl
def unlearnbench_register_protocols() -> list[Path]:
    return sorted(HERE.glob("*.toml"))
