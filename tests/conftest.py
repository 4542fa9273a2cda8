"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from unlearnbench.registry.host import DISABLE_AUTOLOAD_ENV, ONLY_PLUGINS_ENV


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One CPU thread: tiny tensors run fastest on it on a shared machine, and results repeat.
    A module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_thread_and_plugins(one_thread: None) -> Iterator[None]:
    """:func:`one_thread`, and the installed plugins autoloaded (the environment switches that
    turn autoloading off or narrow it are removed for the module)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
        mp.delenv(ONLY_PLUGINS_ENV, raising=False)
        yield
