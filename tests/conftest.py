"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from unlearnbench.registry.host import DISABLE_AUTOLOAD_ENV, ONLY_PLUGINS_ENV


@pytest.fixture(scope="module")
def one_thread_and_plugins() -> Iterator[None]:
    """One CPU thread (shared machine, repeatable numbers) and the installed plugins autoloaded;
    a module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread_and_plugins")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
        mp.delenv(ONLY_PLUGINS_ENV, raising=False)
        yield
    torch.set_num_threads(threads)
