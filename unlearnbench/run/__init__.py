"""The run graph: planning, stages, executors and records.

The package is also callable: ``unlearnbench.run(...)`` is :func:`unlearnbench.run.python_api.run`
(the module's class is swapped for a callable subclass, so ``unlearnbench.run.plan`` and the
other submodules import as usual).
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from unlearnbench.run.python_api import run

        return run(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
